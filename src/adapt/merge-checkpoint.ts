// `medlora merge` at the file level: a Hugging Face checkpoint + a PEFT LoRA adapter -> a standard HF checkpoint whose
// targeted weights are W + B A * scaling (transposed for [in, out] Conv1D weights; the layout comes from the module,
// see moduleLayouts), every other tensor copied unchanged under its original key. Single-file or sharded checkpoints.
// A LoRA on a tied lm_head gets its own merged lm_head.weight (tie_word_embeddings false) and the input embedding is
// left as it was; PEFT's merge_and_unload instead adds the update to the shared tensor, changing the input embedding
// too (PEFT warns about it: peft issue #2777), so there the merged model no longer computes what the adapter did.
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fromBytes, scope, type DType, type Tensor } from '../tensor/index.js';
import { ADAPTER_WEIGHTS, loraScale, readAdapter, type Adapter } from '../io/peft.js';
import { parseModelConfig } from '../io/config.js';
import { buildModel } from '../model/registry.js';
import { isLinearLike, type Module } from '../model/module.js';
import {
  INDEX_FILE,
  openCheckpoint,
  SINGLE_FILE,
  writeFileAtomic,
  writeSafetensors,
  writeSharded,
  type TensorData,
  type TensorSource,
} from '../io/safetensors.js';
import { MedloraError } from '../util/errors.js';
import { mergedWeight } from './merge.js';
import { checkBaseCopies } from './peft-io.js';
import { engineDType, tensorData } from '../io/tensor-bytes.js';

/** Files copied from the model folder when present (tokenizer and generation settings). */
export const COPIED_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'generation_config.json',
  'chat_template.jinja',
  'chat_template.json',
];

/** HF's default max_shard_size for save_pretrained ("5GB"). */
export const MAX_SHARD_BYTES = 5_000_000_000;

export interface MergeCheckpointOptions {
  model: string;
  adapter: string;
  out: string;
  /** cast every floating-point tensor to this dtype; default: keep each tensor's dtype */
  dtype?: 'f32' | 'bf16' | 'f16';
  maxShardBytes?: number;
  onTensor?: (done: number, total: number) => void;
}

export interface MergeCheckpointReport {
  merged: string[];
  tensors: number;
  files: string[];
  copied: string[];
  /** set when a LoRA on a tied output layer forced a separate lm_head weight */
  untied?: string;
}

const FLOAT: readonly string[] = ['F32', 'BF16', 'F16', 'F64'];
const CONFIG_DTYPE: Record<string, string> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };

/**
 * The merge's input checks, shared by every method's merge: `o.out` is not the model folder, and the model's
 * config.json exists and parses. Returns its path and content.
 */
export function readMergeBase(o: MergeCheckpointOptions): { cfgPath: string; config: Record<string, unknown> } {
  if (existsSync(o.out) && realpathSync(o.out) === realpathSync(o.model)) {
    throw new MedloraError(`merge: out ${o.out} is the model folder; write the merged checkpoint somewhere else`);
  }
  const cfgPath = join(o.model, 'config.json');
  if (!existsSync(cfgPath)) throw new MedloraError(`${o.model}: no config.json (is this a Hugging Face model folder?)`);
  try {
    return { cfgPath, config: JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown> };
  } catch (e) {
    throw new MedloraError(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Write a merged checkpoint folder, shared by every method's merge: the tensors as one model.safetensors or HF shards
 * with their index, config.json with the dtype (both spellings the config uses) and `changes`, and the tokenizer and
 * generation files copied from `o.model`.
 */
export function writeMergedFolder(
  o: MergeCheckpointOptions,
  out: Record<string, TensorData>,
  config: Record<string, unknown>,
  changes: Record<string, unknown> = {},
): { files: string[]; copied: string[] } {
  mkdirSync(o.out, { recursive: true });
  const total = Object.values(out).reduce((a, t) => a + t.data.byteLength, 0);
  const max = o.maxShardBytes ?? MAX_SHARD_BYTES;
  const files =
    total <= max
      ? (writeSafetensors(join(o.out, SINGLE_FILE), out, { format: 'pt' }), [SINGLE_FILE])
      : writeSharded(o.out, out, max, { format: 'pt' });
  if (total > max) files.push(INDEX_FILE);

  const newConfig: Record<string, unknown> = { ...config };
  if (o.dtype) {
    // transformers 5 writes `dtype` (torch_dtype is its older alias): update whichever spellings the config has
    if ('dtype' in newConfig) newConfig.dtype = CONFIG_DTYPE[o.dtype];
    if ('torch_dtype' in newConfig || !('dtype' in newConfig)) newConfig.torch_dtype = CONFIG_DTYPE[o.dtype];
  }
  Object.assign(newConfig, changes);
  writeFileAtomic(join(o.out, 'config.json'), [new TextEncoder().encode(`${JSON.stringify(newConfig, null, 2)}\n`)]);
  const copied: string[] = [];
  for (const f of COPIED_FILES) {
    if (existsSync(join(o.model, f))) {
      copyFileSync(join(o.model, f), join(o.out, f));
      copied.push(f);
    }
  }
  return { files, copied };
}

export function mergeCheckpoint(o: MergeCheckpointOptions): MergeCheckpointReport {
  const { cfgPath, config } = readMergeBase(o);
  const src = openCheckpoint(o.model);
  const ad = readAdapter(o.adapter);
  if (ad.config.bias !== 'none')
    throw new MedloraError(`${o.adapter}: bias=${JSON.stringify(ad.config.bias)} is not supported (only "none")`);
  const scaling = loraScale(ad.config);
  const layout = moduleLayouts(config, cfgPath);
  checkBaseCopiesInCheckpoint(ad, o.adapter, src, config.tie_word_embeddings !== false);

  // resolve every adapted module to its checkpoint weight before doing any work
  const plan = new Map<string, { module: string; fromKey: string }>();
  let untied: string | undefined;
  for (const m of ad.modules.keys()) {
    const key = `${m}.weight`;
    if (src.has(key)) {
      plan.set(key, { module: m, fromKey: key });
      continue;
    }
    const tiedFrom = config.tie_word_embeddings !== false ? tiedEmbeddingKey(m, src.names()) : undefined;
    if (!tiedFrom)
      throw new MedloraError(
        `merge: the adapter has LoRA weights for '${m}' but ${src.label} has no tensor '${key}' (adapter for another model?)`,
      );
    plan.set(key, { module: m, fromKey: tiedFrom });
    untied = key;
  }

  const names = [...new Set([...src.names(), ...plan.keys()])].sort();
  const out: Record<string, TensorData> = {};
  const merged: string[] = [];
  names.forEach((name, i) => {
    const p = plan.get(name);
    const info = src.info(p ? p.fromKey : name);
    if (p) {
      const lm = ad.modules.get(p.module)!;
      out[name] = scope(() => {
        // cast first: with --dtype f32 a bf16 weight must not be rounded back to bf16 after adding the update
        const W = cast(
          fromBytes(src.read(info.name), engineDType(info.dtype, `${info.file}: '${info.name}'`), info.shape),
          o.dtype,
        );
        const A = fromBytes(ad.tensors.read(lm.A.name), engineDType(lm.A.dtype, lm.A.name), lm.A.shape).to('f32');
        const B = fromBytes(ad.tensors.read(lm.B.name), engineDType(lm.B.dtype, lm.B.name), lm.B.shape).to('f32');
        const delta = B.matmul(A).mul(scaling);
        const label = `merge '${p.module}' (${info.file}: '${info.name}')`;
        const w = mergedWeight(W, delta, fanInFanOutOf(layout, p.module, W.shape, delta.shape, label), label);
        return tensorData(w);
      });
      merged.push(p.module);
    } else if (o.dtype && FLOAT.includes(info.dtype) && engineDType(info.dtype, name) !== o.dtype) {
      out[name] = scope(() =>
        tensorData(fromBytes(src.read(name), engineDType(info.dtype, name), info.shape).to(o.dtype!)),
      );
    } else {
      out[name] = { dtype: info.dtype, shape: info.shape, data: src.read(name) };
    }
    o.onTensor?.(i + 1, names.length);
  });

  const { files, copied } = writeMergedFolder(o, out, config, untied ? { tie_word_embeddings: false } : {});
  return { merged, tensors: names.length, files, copied, ...(untied ? { untied } : {}) };
}

/**
 * Whether each adapted weight is stored [in, out] (GPT-2's Conv1D, PEFT fan_in_fan_out) or [out, in] (nn.Linear): taken
 * from the module at that path in medlora's model of the architecture (built empty from config.json: no weights), the
 * way PEFT decides per layer class (it warns and overrides fan_in_fan_out to match Conv1D / nn.Linear, so the adapter
 * config's flag is not trusted: a GPT-2 adapter targeting c_attn and lm_head mixes both layouts). Returns undefined
 * when medlora does not know the architecture (or cannot read its config): see fanInFanOutOf.
 */
function moduleLayouts(config: Record<string, unknown>, file: string): Map<string, boolean> | undefined {
  let model: Module | undefined;
  try {
    model = buildModel(parseModelConfig(config, file).config);
  } catch (e) {
    if (e instanceof MedloraError) return undefined;
    throw e;
  }
  try {
    const out = new Map<string, boolean>();
    for (const [path, m] of model.namedModules()) if (isLinearLike(m)) out.set(path, m.fanInFanOut);
    return out;
  } finally {
    model.dispose();
  }
}

/**
 * The layout of one adapted weight: the module's where known (a module the adapter names but the architecture lacks is
 * an error); otherwise the shapes decide, and a square weight of an unknown architecture is an error, since a
 * transposed merge would pass every shape check.
 */
function fanInFanOutOf(
  layout: Map<string, boolean> | undefined,
  module: string,
  w: readonly number[],
  delta: readonly number[],
  label: string,
): boolean {
  if (layout) {
    const f = layout.get(module);
    if (f === undefined)
      throw new MedloraError(
        `${label}: this architecture has no linear layer '${module}' (adapter for another model?)`,
      );
    return f;
  }
  if (w[0] === w[1]) {
    throw new MedloraError(
      `${label}: unknown architecture and a square weight [${w.join(', ')}]: cannot tell whether it is stored [out, in] (nn.Linear) or [in, out] (Conv1D)`,
    );
  }
  return w[0] === delta[1] && w[1] === delta[0];
}

function cast(t: Tensor, dtype: DType | undefined): Tensor {
  return dtype && t.dtype !== dtype ? t.to(dtype) : t;
}

/** For a LoRA on a tied output layer (lm_head): the input embedding it shares its weight with. */
/**
 * PEFT's copy of a targeted embedding/head base weight (lm_head.base_layer.weight, written by save_embedding_layers=
 * "auto") must equal the checkpoint's weight (a tied head's is the input embedding): see checkBaseCopies.
 */
export function checkBaseCopiesInCheckpoint(ad: Adapter, adapterDir: string, src: TensorSource, tied: boolean): void {
  checkBaseCopies(ad, join(adapterDir, ADAPTER_WEIGHTS), (path) => {
    const key = path.replace(/\.base_layer\.weight$/, '.weight');
    const from = src.has(key) ? key : tied ? tiedEmbeddingKey(key.replace(/\.weight$/, ''), src.names()) : undefined;
    if (!from) return undefined;
    const info = src.info(from);
    return fromBytes(src.read(from), engineDType(info.dtype, `${info.file}: '${from}'`), info.shape);
  });
}

function tiedEmbeddingKey(module: string, names: string[]): string | undefined {
  if (module !== 'lm_head' && !module.endsWith('.lm_head')) return undefined;
  return ['model.embed_tokens.weight', 'transformer.wte.weight', 'embed_tokens.weight', 'wte.weight'].find((k) =>
    names.includes(k),
  );
}

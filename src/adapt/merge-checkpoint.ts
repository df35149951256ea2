// `medlora merge` at the file level: a Hugging Face checkpoint + a PEFT LoRA adapter -> a standard HF checkpoint whose
// targeted weights are W + B A * scaling (transposed for fan_in_fan_out), every other tensor copied unchanged under its
// original key. Works for any architecture (only tensor names matter), single-file or sharded checkpoints.
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fromBytes, scope, type DType, type Tensor } from '../tensor/index.js';
import { loraScale, readAdapter } from '../io/peft.js';
import { INDEX_FILE, openCheckpoint, SINGLE_FILE, writeFileAtomic, writeSafetensors, writeSharded, type TensorData } from '../io/safetensors.js';
import { MedloraError } from '../util/errors.js';
import { mergedWeight } from './merge.js';
import { engineDType, tensorData } from './peft-io.js';

/** Files copied from the model folder when present (tokenizer and generation settings). */
export const COPIED_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'vocab.json',
  'merges.txt', 'added_tokens.json', 'generation_config.json', 'chat_template.jinja', 'chat_template.json'];

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

export function mergeCheckpoint(o: MergeCheckpointOptions): MergeCheckpointReport {
  if (existsSync(o.out) && realpathSync(o.out) === realpathSync(o.model)) {
    throw new MedloraError(`merge: --out ${o.out} is the model folder; write the merged checkpoint somewhere else`);
  }
  const cfgPath = join(o.model, 'config.json');
  if (!existsSync(cfgPath)) throw new MedloraError(`${o.model}: no config.json (is this a Hugging Face model folder?)`);
  let config: Record<string, unknown>;
  try { config = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>; } catch (e) {
    throw new MedloraError(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  const src = openCheckpoint(o.model);
  const ad = readAdapter(o.adapter);
  if (ad.otherTensors.length) throw new MedloraError(`${o.adapter}: holds non-LoRA tensors (${ad.otherTensors[0]}, ...); modules_to_save adapters are not supported`);
  if (ad.config.bias !== 'none') throw new MedloraError(`${o.adapter}: bias=${JSON.stringify(ad.config.bias)} is not supported (only "none")`);
  const scaling = loraScale(ad.config);
  const fanInFanOut = layoutOf(config, ad.config.fan_in_fan_out);

  // resolve every adapted module to its checkpoint weight before doing any work
  const plan = new Map<string, { module: string; fromKey: string }>();
  let untied: string | undefined;
  for (const m of ad.modules.keys()) {
    const key = `${m}.weight`;
    if (src.has(key)) { plan.set(key, { module: m, fromKey: key }); continue; }
    const tiedFrom = config.tie_word_embeddings !== false ? tiedEmbeddingKey(m, src.names()) : undefined;
    if (!tiedFrom) throw new MedloraError(`merge: the adapter has LoRA weights for '${m}' but ${src.label} has no tensor '${key}' (adapter for another model?)`);
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
        const W = cast(fromBytes(src.read(info.name), engineDType(info.dtype, `${info.file}: '${info.name}'`), info.shape), o.dtype);
        const A = fromBytes(ad.tensors.read(lm.A.name), engineDType(lm.A.dtype, lm.A.name), lm.A.shape).to('f32');
        const B = fromBytes(ad.tensors.read(lm.B.name), engineDType(lm.B.dtype, lm.B.name), lm.B.shape).to('f32');
        const delta = B.matmul(A).mul(scaling);
        const w = mergedWeight(W, delta, fanInFanOut, `merge '${p.module}' (${info.file}: '${info.name}')`);
        return tensorData(w);
      });
      merged.push(p.module);
    } else if (o.dtype && FLOAT.includes(info.dtype) && engineDType(info.dtype, name) !== o.dtype) {
      out[name] = scope(() => tensorData(fromBytes(src.read(name), engineDType(info.dtype, name), info.shape).to(o.dtype!)));
    } else {
      out[name] = { dtype: info.dtype, shape: info.shape, data: src.read(name) };
    }
    o.onTensor?.(i + 1, names.length);
  });

  mkdirSync(o.out, { recursive: true });
  const total = Object.values(out).reduce((a, t) => a + t.data.byteLength, 0);
  const max = o.maxShardBytes ?? MAX_SHARD_BYTES;
  const files = total <= max ? (writeSafetensors(join(o.out, SINGLE_FILE), out, { format: 'pt' }), [SINGLE_FILE])
    : writeSharded(o.out, out, max, { format: 'pt' });
  if (total > max) files.push(INDEX_FILE);

  const newConfig: Record<string, unknown> = { ...config };
  if (o.dtype) newConfig.torch_dtype = CONFIG_DTYPE[o.dtype];
  if (untied) newConfig.tie_word_embeddings = false;
  writeFileAtomic(join(o.out, 'config.json'), [new TextEncoder().encode(`${JSON.stringify(newConfig, null, 2)}\n`)]);
  const copied: string[] = [];
  for (const f of COPIED_FILES) {
    if (existsSync(join(o.model, f))) { copyFileSync(join(o.model, f), join(o.out, f)); copied.push(f); }
  }
  return { merged, tensors: names.length, files, copied, ...(untied ? { untied } : {}) };
}

/**
 * Whether the checkpoint stores adapted weights as [in, out]. Like PEFT (which warns and overrides fan_in_fan_out to
 * match the layer class), the architecture decides where it is known: GPT-2's Conv1D is [in, out], the Linear layers
 * of the Llama family are [out, in]; only an unknown model_type falls back to the adapter config's flag. This matters
 * for square weights, where a wrong flag would merge the transpose without any shape error.
 */
function layoutOf(config: Record<string, unknown>, fromAdapter: boolean): boolean {
  const t = config.model_type;
  if (t === 'gpt2') return true;
  if (typeof t === 'string' && ['llama', 'mistral', 'qwen2', 'stablelm', 'stablelm_epoch', 'phi', 'gemma'].includes(t)) return false;
  return fromAdapter;
}

function cast(t: Tensor, dtype: DType | undefined): Tensor {
  return dtype && t.dtype !== dtype ? t.to(dtype) : t;
}

/** For a LoRA on a tied output layer (lm_head): the input embedding it shares its weight with. */
function tiedEmbeddingKey(module: string, names: string[]): string | undefined {
  if (module !== 'lm_head' && !module.endsWith('.lm_head')) return undefined;
  return ['model.embed_tokens.weight', 'transformer.wte.weight', 'embed_tokens.weight', 'wte.weight'].find((k) => names.includes(k));
}

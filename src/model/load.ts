// loadModel(dir): config.json + safetensors (single file or sharded) -> a CausalLM with frozen parameters. Every
// declared parameter must be in the checkpoint with the declared shape and nothing unexpected may remain; tensors are
// read by the engine straight from the file (fromFile: no second copy in JS), one at a time, and each is handed to the
// optional onWeight hook as it is read (quantize-while-loading: src/adapt/nf4-linear.ts loadModelNf4).
import { fromFile, type Device, type DType, type Tensor } from '../tensor/index.js';
import { loadModelConfig, type ModelConfig } from '../io/config.js';
import { openCheckpoint, type TensorSource } from '../io/safetensors.js';
import { floatingEngineDType } from '../io/tensor-bytes.js';
import { MedloraError } from '../util/errors.js';
import { warn } from '../util/warn.js';
import { declaredParameters } from './layers.js';
import type { Module } from './module.js';
import { buildModel, type LoadedModel } from './registry.js';

export interface LoadOptions {
  /** compute dtype; default: the checkpoint's (its first weight's) floating dtype */
  dtype?: 'f32' | 'bf16' | 'f16';
  device?: Device;
  /**
   * Called with each parameter as soon as it is read (already in the compute dtype and on the device), in declaration
   * order; `key` is the model's parameter name ("model.layers.0.self_attn.q_proj.weight"). Returning true hands the
   * tensor over: the hook owns (and must dispose) it and the module keeps its 0-element placeholder. This lets a higher
   * layer (NF4 quantization) replace a weight while loading, so that only one full-precision tensor is in flight.
   */
  onWeight?: (key: string, module: Module, name: string, t: Tensor) => boolean;
}

/** Load a Hugging Face model folder. */
export function loadModel(dir: string, opts: LoadOptions = {}): LoadedModel {
  const { config } = loadModelConfig(dir);
  const source = openCheckpoint(dir);
  return loadFromSource(config, source, opts);
}

/** Build the architecture for `config` and fill it from `source`; errors name the key and the file. */
export function loadFromSource(config: ModelConfig, source: TensorSource, opts: LoadOptions = {}): LoadedModel {
  const model = buildModel(config);
  try {
    fill(model, source, opts);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

function fill(model: LoadedModel, source: TensorSource, opts: LoadOptions): void {
  const expected = declaredParameters(model);
  const available = new Set(source.names());
  // resolve every expected key to a checkpoint key (HF also accepts base-model checkpoints without the prefix)
  const resolved = new Map<string, string>();
  const missing: string[] = [];
  for (const key of expected.keys()) {
    const alt = model.checkpointAliases(key).find((k) => available.has(k));
    if (alt === undefined) missing.push(key);
    else resolved.set(key, alt);
  }
  if (missing.length) {
    throw new MedloraError(
      `${source.label}: missing weight ${missing
        .slice(0, 5)
        .map((k) => `'${k}'`)
        .join(', ')}` + `${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} (expected by ${config(model)})`,
    );
  }
  tiedHeadCheck(model, source, resolved);
  const used = new Set(resolved.values());
  const extra = [...available].filter((k) => !used.has(k) && !model.ignoredCheckpointKey(k));
  if (extra.length) {
    throw new MedloraError(
      `${source.label}: unexpected weight ${extra
        .slice(0, 5)
        .map((k) => `'${k}'`)
        .join(', ')}` +
        `${extra.length > 5 ? ` and ${extra.length - 5} more` : ''} (not part of ${config(model)}; wrong config.json?)`,
    );
  }
  // shapes and dtypes first, so a bad file fails before any memory is used
  let target: DType | undefined = opts.dtype;
  for (const [key, { shape }] of expected) {
    const ck = resolved.get(key)!;
    const info = source.info(ck);
    const dt = floatingEngineDType(info.dtype);
    if (dt === undefined)
      throw new MedloraError(
        `${info.file}: weight '${ck}' has dtype ${info.dtype}; expected a floating type (F32, BF16, F16)`,
      );
    target ??= dt === 'f64' ? 'f32' : dt;
    if (info.shape.length !== shape.length || info.shape.some((s, i) => s !== shape[i])) {
      throw new MedloraError(
        `${info.file}: weight '${ck}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}] from ${config(model)} (config.json does not match the weights)`,
      );
    }
  }
  const device = opts.device ?? 'cpu';
  for (const [key, { module, name }] of expected) {
    const ck = resolved.get(key)!;
    const info = source.info(ck);
    let t: Tensor;
    try {
      t = fromFile(info.file, info.byteOffset, floatingEngineDType(info.dtype)!, info.shape);
    } catch (e) {
      throw new MedloraError(`${info.file}: cannot read weight '${ck}': ${(e as Error).message}`);
    }
    if (t.dtype !== target || device !== 'cpu') {
      const c = t.to({ dtype: target!, device });
      t.dispose();
      t = c;
    }
    if (opts.onWeight?.(key, module, name, t)) continue;
    module.setParam(name, t);
  }
}

/**
 * tie_word_embeddings=true with a separate lm_head.weight in the checkpoint: transformers ties the head to the input
 * embedding and ignores that tensor, and so does medlora; when the two differ the checkpoint's own head is not what
 * either computes with, so say so (bytes compared, no conversion).
 */
function tiedHeadCheck(model: LoadedModel, source: TensorSource, resolved: Map<string, string>): void {
  if (!model.config.tie_word_embeddings || !source.names().includes('lm_head.weight')) return;
  const embedKey = [...resolved.entries()].find(([k]) => /(^|\.)(embed_tokens|wte)\.weight$/.test(k))?.[1];
  if (!embedKey) return;
  const a = source.info('lm_head.weight'),
    b = source.info(embedKey);
  const same =
    a.dtype === b.dtype &&
    a.shape.join() === b.shape.join() &&
    Buffer.from(source.read('lm_head.weight')).equals(Buffer.from(source.read(embedKey)));
  if (!same) {
    warn(
      `${a.file}: config.json has tie_word_embeddings=true, so 'lm_head.weight' (which differs from '${embedKey}') is ignored and the head uses the input embedding, as in transformers; set tie_word_embeddings=false to use it`,
    );
  }
}

function config(model: LoadedModel): string {
  const c = model.config;
  return `model_type ${c.model_type} (${c.architectures instanceof Array ? (c.architectures as string[]).join(', ') || 'no architectures' : ''})`;
}

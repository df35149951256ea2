// The file-level merge for methods whose merge needs the model's own layers (DoRA's row norms, Adapter-V2's scales):
// load the checkpoint, load the adapter through its method, merge in memory, and write every parameter under its HF key
// (config.json with the caller's changes, tokenizer files copied). LoRA keeps its streaming merge (merge-checkpoint.ts).
import { copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { scope, type Tensor } from '../../tensor/index.js';
import {
  INDEX_FILE,
  SINGLE_FILE,
  writeFileAtomic,
  writeSafetensors,
  writeSharded,
  type TensorData,
} from '../../io/safetensors.js';
import { loadModel } from '../../model/load.js';
import type { Module } from '../../model/module.js';
import { MedloraError } from '../../util/errors.js';
import {
  COPIED_FILES,
  MAX_SHARD_BYTES,
  type MergeCheckpointOptions,
  type MergeCheckpointReport,
} from '../merge-checkpoint.js';
import { tensorData } from '../../io/tensor-bytes.js';

const CONFIG_DTYPE: Record<string, string> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };

/**
 * Merge `o.adapter` into `o.model` in memory with `loadAndMerge` (which returns the merged module paths and the
 * config.json keys the merged layers need) and write the result to `o.out`.
 */
export function mergeInMemory(
  o: MergeCheckpointOptions,
  loadAndMerge: (model: Module) => { merged: string[]; configChanges: Record<string, unknown> },
): MergeCheckpointReport {
  if (existsSync(o.out) && realpathSync(o.out) === realpathSync(o.model)) {
    throw new MedloraError(`merge: out ${o.out} is the model folder; write the merged checkpoint somewhere else`);
  }
  const cfgPath = join(o.model, 'config.json');
  if (!existsSync(cfgPath)) throw new MedloraError(`${o.model}: no config.json (is this a Hugging Face model folder?)`);
  const config = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  const model = loadModel(o.model);
  try {
    const { merged, configChanges } = loadAndMerge(model);
    const params = model.namedParameters();
    const seen = new Set<Tensor>();
    const out: Record<string, TensorData> = {};
    params.forEach(([name, t], i) => {
      if (seen.has(t)) return;
      seen.add(t);
      out[name] = scope(() =>
        tensorData(
          o.dtype && ['f32', 'bf16', 'f16'].includes(t.dtype) && t.dtype !== o.dtype ? t.to(o.dtype) : t.detach(),
        ),
      );
      o.onTensor?.(i + 1, params.length);
    });
    mkdirSync(o.out, { recursive: true });
    const total = Object.values(out).reduce((a, t) => a + t.data.byteLength, 0);
    const max = o.maxShardBytes ?? MAX_SHARD_BYTES;
    const files =
      total <= max
        ? (writeSafetensors(join(o.out, SINGLE_FILE), out, { format: 'pt' }), [SINGLE_FILE])
        : writeSharded(o.out, out, max, { format: 'pt' });
    if (total > max) files.push(INDEX_FILE);
    const newConfig: Record<string, unknown> = { ...config, ...configChanges };
    if (o.dtype) newConfig.torch_dtype = CONFIG_DTYPE[o.dtype];
    writeFileAtomic(join(o.out, 'config.json'), [new TextEncoder().encode(`${JSON.stringify(newConfig, null, 2)}\n`)]);
    const copied: string[] = [];
    for (const f of COPIED_FILES)
      if (existsSync(join(o.model, f))) {
        copyFileSync(join(o.model, f), join(o.out, f));
        copied.push(f);
      }
    return { merged, tensors: Object.keys(out).length, files, copied };
  } finally {
    model.dispose();
  }
}

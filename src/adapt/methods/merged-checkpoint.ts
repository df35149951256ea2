// The file-level merge for methods whose merge needs the model's own layers (DoRA's row norms, Adapter-V2's scales):
// load the checkpoint, load the adapter through its method, merge in memory, and write every parameter under its HF key
// (config.json with the caller's changes, tokenizer files copied). LoRA keeps its streaming merge (merge-checkpoint.ts).
import { scope, type Tensor } from '../../tensor/index.js';
import type { TensorData } from '../../io/safetensors.js';
import { loadModel } from '../../model/load.js';
import type { Module } from '../../model/module.js';
import {
  readMergeBase,
  writeMergedFolder,
  type MergeCheckpointOptions,
  type MergeCheckpointReport,
} from '../merge-checkpoint.js';
import { tensorData } from '../../io/tensor-bytes.js';

/**
 * Merge `o.adapter` into `o.model` in memory with `loadAndMerge` (which returns the merged module paths and the
 * config.json keys the merged layers need) and write the result to `o.out`.
 */
export function mergeInMemory(
  o: MergeCheckpointOptions,
  loadAndMerge: (model: Module) => { merged: string[]; configChanges: Record<string, unknown> },
): MergeCheckpointReport {
  const { config } = readMergeBase(o);
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
    const { files, copied } = writeMergedFolder(o, out, config, configChanges);
    return { merged, tensors: Object.keys(out).length, files, copied };
  } finally {
    model.dispose();
  }
}

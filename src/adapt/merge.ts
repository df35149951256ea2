// Folding LoRA adapters into the base weights (PEFT's merge_and_unload): W' = W + B A * scaling, transposed for
// [in, out] (fan_in_fan_out, GPT-2 Conv1D) weights, computed in F32 and stored back in the base weight's dtype; the
// LoraLinear wrappers are replaced by their (updated) base layers, so the model has its original structure again.
import { noGrad, scope, type Tensor } from '../tensor/index.js';
import type { Module } from '../model/module.js';
import { MedloraError } from '../util/errors.js';
import { loraModules, resolve } from './apply.js';
import type { LoraLinear } from './lora.js';

/** W + delta for a base weight stored [out, in] (fanInFanOut false) or [in, out] (true), in W's dtype. */
export function mergedWeight(W: Tensor, deltaOutIn: Tensor, fanInFanOut: boolean, label: string): Tensor {
  const want = fanInFanOut ? [deltaOutIn.shape[1], deltaOutIn.shape[0]] : [...deltaOutIn.shape];
  if (W.shape.length !== 2 || W.shape[0] !== want[0] || W.shape[1] !== want[1]) {
    throw new MedloraError(
      `${label}: base weight has shape [${W.shape.join(', ')}] but the LoRA update is [${want.join(', ')}]` +
        `${fanInFanOut ? ' (fan_in_fan_out: weight stored [in, out])' : ' ([out, in])'}`,
    );
  }
  return noGrad(() =>
    scope(() => {
      const d = fanInFanOut ? deltaOutIn.transpose(0, 1) : deltaOutIn;
      return W.to('f32')
        .add(d.to({ device: W.device }))
        .to(W.dtype)
        .contiguous();
    }),
  );
}

function replaceAt(model: Module, path: string, m: Module): void {
  const dot = path.lastIndexOf('.');
  const parent = resolve(model, dot < 0 ? '' : path.slice(0, dot));
  if (!parent) throw new Error(`merge: no parent module for ${path}`);
  parent.setChild(path.slice(dot + 1), m);
}

/** The base layer's registered `weight`, or a clear error (NF4 bases and unregistered tied heads cannot be merged). */
function baseWeight(path: string, lora: LoraLinear): Tensor {
  const w = lora.base_layer.ownParameters().find(([n]) => n === 'weight')?.[1];
  if (!w || w.dtype === 'u8') {
    throw new MedloraError(
      `merge: '${path}' has no floating-point weight to merge into` +
        ` (${w ? 'its base is 4-bit quantized: load the base model unquantized (bf16/f32) to merge' : 'the base layer registers no "weight" (a tied output layer?)'})`,
    );
  }
  return w;
}

/**
 * Merge every LoRA adapter into its base layer and unwrap it. A base weight shared with another parameter (tied
 * embeddings) is not modified in place: the merged layer gets its own tensor and the tie is broken for that layer.
 * Returns the merged module paths.
 */
export function mergeLora(model: Module): string[] {
  const mods = loraModules(model);
  if (mods.length === 0) throw new MedloraError('merge: the model has no LoRA adapters');
  for (const [path, lora] of mods) {
    const W = baseWeight(path, lora);
    const merged = scope(() => mergedWeight(W, lora.deltaWeight(), lora.fanInFanOut, `merge '${path}'`));
    const shared = model.namedParameters().filter(([, t]) => t === W).length > 1;
    lora.base_layer.setParam('weight', merged, shared);
    lora.lora_A.dispose();
    lora.lora_B.dispose();
    replaceAt(model, path, lora.base_layer);
  }
  return mods.map(([p]) => p);
}

/** Remove every LoRA adapter without merging (PEFT's unload): the base model as it was. Returns the paths. */
export function unloadLora(model: Module): string[] {
  const mods = loraModules(model);
  for (const [path, lora] of mods) {
    lora.lora_A.dispose();
    lora.lora_B.dispose();
    replaceAt(model, path, lora.base_layer);
  }
  return mods.map(([p]) => p);
}

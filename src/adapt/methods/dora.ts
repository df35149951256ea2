// Fine-tuning method "dora": PEFT 0.21 DoRA (LoRA config with use_dora: true; wrapper in ../dora.ts). Files are PEFT's:
// adapter_config.json with "use_dora": true, adapter_model.safetensors with lora_A / lora_B and
// base_model.model.<module>.lora_magnitude_vector [out] (PEFT's save_and_load strips ".weight" from the DoraLinearLayer).
import { join } from 'node:path';
import { fromBytes, noGrad, scope, type Tensor } from '../../tensor/index.js';
import type { Module } from '../../model/module.js';
import { ADAPTER_WEIGHTS, loraConfigToJson, loraKey, readAdapter, writeAdapter } from '../../io/peft.js';
import type { TensorData } from '../../io/safetensors.js';
import { MedloraError } from '../../util/errors.js';
import { applyLora, loraModules, resolve, type LoraSettings } from '../apply.js';
import { DoraLinear } from '../dora.js';
import { unloadLora } from '../merge.js';
import { loraConfigOf } from '../peft-io.js';
import { engineDType, tensorData } from '../../io/tensor-bytes.js';
import { mergeInMemory } from './merged-checkpoint.js';
import type { FinetuningMethod } from './types.js';

export function doraModules(model: Module): Array<[string, DoraLinear]> {
  return loraModules(model).filter((e): e is [string, DoraLinear] => e[1] instanceof DoraLinear);
}

export function magnitudeKey(path: string): string {
  return `base_model.model.${path}.lora_magnitude_vector`;
}

function applyDora(model: Module, s: LoraSettings): string[] {
  return applyLora(model, s, DoraLinear);
}

function save(
  model: Module,
  dir: string,
  info: { base_model_name_or_path?: string | null; target_modules?: string[] | string } = {},
): Record<string, unknown> {
  const mods = doraModules(model);
  if (mods.length === 0) throw new MedloraError('save adapter (dora): the model has no DoRA adapters');
  if (mods.length !== loraModules(model).length)
    throw new MedloraError('save adapter (dora): the model mixes LoRA and DoRA adapters');
  const base = loraConfigOf(model, {
    ...(info.base_model_name_or_path !== undefined ? { base_model_name_or_path: info.base_model_name_or_path } : {}),
    ...(info.target_modules !== undefined ? { target_modules: info.target_modules } : {}),
  });
  const config = { ...base, extra: { ...base.extra, use_dora: true } };
  const tensors: Record<string, TensorData> = {};
  for (const [path, l] of mods) {
    tensors[loraKey(path, 'A')] = tensorData(l.lora_A.weight.detach());
    tensors[loraKey(path, 'B')] = tensorData(l.lora_B.weight.detach());
    tensors[magnitudeKey(path)] = tensorData(l.lora_magnitude_vector.detach());
  }
  writeAdapter(dir, config, tensors);
  return loraConfigToJson(config);
}

function load(model: Module, dir: string): { method: 'dora'; config: Record<string, unknown>; modules: string[] } {
  const ad = readAdapter(dir, { dora: true });
  const file = join(dir, ADAPTER_WEIGHTS);
  if (ad.config.extra.use_dora !== true)
    throw new MedloraError(`${join(dir, 'adapter_config.json')}: not a DoRA adapter (use_dora is not true)`);
  if (ad.otherTensors.length)
    throw new MedloraError(
      `${file}: holds non-DoRA tensors (${ad.otherTensors.slice(0, 3).join(', ')}); modules_to_save adapters are not supported`,
    );
  if (ad.config.bias !== 'none')
    throw new MedloraError(
      `${join(dir, 'adapter_config.json')}: bias=${JSON.stringify(ad.config.bias)} is not supported (only "none")`,
    );
  const wrapped = applyDora(model, { ...ad.config, init: true });
  try {
    const inFile = new Set(ad.modules.keys());
    const missing = wrapped.filter((p) => !inFile.has(p));
    const extra = [...inFile].filter((p) => !wrapped.includes(p));
    if (missing.length || extra.length) {
      throw new MedloraError(
        `${file}: does not fit this model:${missing.length ? ` no weights for targeted module(s) ${missing.slice(0, 4).join(', ')};` : ''}` +
          `${extra.length ? ` weights for module(s) ${extra.slice(0, 4).join(', ')} that are not targeted linear layers of this model;` : ''} (was it trained for a different architecture?)`,
      );
    }
    const byPath = new Map(doraModules(model));
    for (const [path, info] of ad.modules) {
      const l = byPath.get(path)!;
      const read = (name: string, dtype: Parameters<typeof engineDType>[0], shape: number[]): Tensor =>
        fromBytes(ad.tensors.read(name), engineDType(dtype, `${file}: '${name}'`), shape);
      const mi = ad.magnitudes.get(path)!;
      const [A, B, M] = [
        read(info.A.name, info.A.dtype, info.A.shape),
        read(info.B.name, info.B.dtype, info.B.shape),
        read(mi.name, mi.dtype, mi.shape),
      ];
      try {
        l.setFactors(A, B, `${file}: '${path}'`);
        l.setMagnitude(M, `${file}: '${path}'`);
      } finally {
        A.dispose();
        B.dispose();
        M.dispose();
      }
    }
  } catch (e) {
    unloadLora(model);
    throw e;
  }
  return { method: 'dora', config: loraConfigToJson(ad.config), modules: wrapped };
}

/** PEFT merge_and_unload for DoRA: W' = m / ||W + s B A||_row * (W + s B A), in the base layout and dtype. */
function merge(model: Module): string[] {
  const mods = doraModules(model);
  if (mods.length === 0) throw new MedloraError('merge: the model has no DoRA adapters');
  for (const [path, l] of mods) {
    const w = l.base_layer.ownParameters().find(([n]) => n === 'weight')?.[1];
    if (!w || w.dtype === 'u8') {
      throw new MedloraError(
        `merge: '${path}' has no floating-point weight to merge into (${w ? 'its base is 4-bit quantized: load the base model unquantized to merge' : 'the base layer registers no "weight" (a tied output layer?)'})`,
      );
    }
    const merged = noGrad(() =>
      scope(() => {
        const m = l.mergedWeightOutIn();
        return (l.fanInFanOut ? m.transpose(0, 1) : m).to(w.dtype).contiguous();
      }),
    );
    const shared = model.namedParameters().filter(([, t]) => t === w).length > 1;
    l.base_layer.setParam('weight', merged, shared);
    l.lora_A.dispose();
    l.lora_B.dispose();
    l.lora_magnitude_vector.dispose();
    const dot = path.lastIndexOf('.');
    resolve(model, dot < 0 ? '' : path.slice(0, dot))!.setChild(path.slice(dot + 1), l.base_layer);
  }
  return mods.map(([p]) => p);
}

export const doraMethod: FinetuningMethod<LoraSettings> = {
  name: 'dora',
  configSection: 'lora',
  recognizes: (c) => c.peft_type === 'LORA' && c.use_dora === true,
  present: (model) => doraModules(model).length > 0,
  apply: applyDora,
  trainable: (model) => model.trainableParameters(),
  save,
  load,
  merge,
  mergeCheckpoint: (o) =>
    mergeInMemory(o, (model) => {
      load(model, o.adapter);
      return { merged: merge(model), configChanges: {} };
    }),
};

// Fine-tuning method "lora": PEFT LoRA (wrappers in ../lora.ts, targeting in ../apply.ts, files in ../peft-io.ts,
// merges in ../merge.ts and ../merge-checkpoint.ts), seen through the method seam (types.ts).
import type { Module } from '../../model/module.js';
import { loraConfigToJson } from '../../io/peft.js';
import { MedloraError } from '../../util/errors.js';
import { applyLora, loraModules, type LoraSettings } from '../apply.js';
import { DoraLinear } from '../dora.js';
import { mergeLora } from '../merge.js';
import { mergeCheckpoint } from '../merge-checkpoint.js';
import { loadAdapter, saveAdapter } from '../peft-io.js';
import type { FinetuningMethod } from './types.js';

/** LoRA wrappers that are plain LoRA (not DoRA's subclass). */
export function plainLoraModules(model: Module): ReturnType<typeof loraModules> {
  return loraModules(model).filter(([, l]) => !(l instanceof DoraLinear));
}

export const loraMethod: FinetuningMethod<LoraSettings> = {
  name: 'lora',
  configSection: 'lora',
  recognizes: (c) => c.peft_type === 'LORA' && c.use_dora !== true,
  present: (model) => plainLoraModules(model).length > 0,
  apply: (model, s) => applyLora(model, s),
  trainable: (model) => model.trainableParameters(),
  save(model, dir, info = {}) {
    if (loraModules(model).some(([, l]) => l instanceof DoraLinear))
      throw new MedloraError('save adapter (lora): the model carries DoRA adapters; save it with the dora method');
    return loraConfigToJson(
      saveAdapter(model, dir, {
        ...(info.base_model_name_or_path !== undefined
          ? { base_model_name_or_path: info.base_model_name_or_path }
          : {}),
        ...(info.target_modules !== undefined ? { target_modules: info.target_modules } : {}),
      }),
    );
  },
  load(model, dir) {
    const r = loadAdapter(model, dir);
    return { method: 'lora', config: loraConfigToJson(r.config), modules: r.modules };
  },
  merge: (model) => mergeLora(model),
  mergeCheckpoint: (o) => mergeCheckpoint(o),
};

// One entry point for the trainer: turn a loaded base model into what a run trains -- LoRA (optionally over an NF4
// 4-bit base, i.e. QLoRA; optionally starting from an existing PEFT adapter) or full fine-tuning.
import type { Module } from '../model/module.js';
import { MedloraError } from '../util/errors.js';
import { applyLora, enableFullFinetuning, trainableParameterSummary, type LoraSettings, type TrainableSummary } from './apply.js';
import { quantizeModel, type QuantizeReport } from './nf4-linear.js';
import { loadAdapter } from './peft-io.js';
import type { LoraConfig } from '../io/peft.js';

export interface PrepareOptions {
  finetuning: 'lora' | 'full';
  lora?: LoraSettings & { use_rslora?: boolean; init_adapter?: string | null };
  /** QLoRA: store the frozen base linears as NF4 (lm_head stays full precision) */
  load_in_4bit?: boolean;
  /** double-quantize the NF4 block scales */
  double_quant?: boolean;
}

export interface PrepareReport {
  finetuning: 'lora' | 'full';
  /** LoRA-wrapped module paths (empty for full fine-tuning) */
  wrapped: string[];
  /** the adapter config in effect when starting from init_adapter (its r / alpha / targets win) */
  adapterConfig?: LoraConfig;
  quantization?: QuantizeReport;
  summary: TrainableSummary;
}

export function prepareForTraining(model: Module, o: PrepareOptions): PrepareReport {
  if (o.finetuning === 'full') {
    if (o.load_in_4bit) throw new MedloraError('finetuning: full cannot train 4-bit weights; use finetuning: lora with load_in_4bit (QLoRA), or drop load_in_4bit');
    if (o.lora?.init_adapter) throw new MedloraError('finetuning: full does not use lora.init_adapter (merge the adapter into the model first: medlora merge)');
    enableFullFinetuning(model);
    return { finetuning: 'full', wrapped: [], summary: trainableParameterSummary(model) };
  }
  if (!o.lora) throw new MedloraError('finetuning: lora needs the lora settings (r, lora_alpha, lora_dropout, target_modules)');
  const quantization = o.load_in_4bit ? quantizeModel(model, { doubleQuant: o.double_quant ?? false }) : undefined;
  let wrapped: string[];
  let adapterConfig: LoraConfig | undefined;
  if (o.lora.init_adapter) {
    const r = loadAdapter(model, o.lora.init_adapter);
    wrapped = r.modules;
    adapterConfig = r.config;
  } else {
    wrapped = applyLora(model, o.lora);
  }
  return { finetuning: 'lora', wrapped, ...(adapterConfig ? { adapterConfig } : {}), ...(quantization ? { quantization } : {}),
    summary: trainableParameterSummary(model) };
}

// From a resolved config to what the Trainer needs: the model (bf16, optional 4-bit base, LoRA fresh or from
// init_adapter, gradient checkpointing), the train / validation examples, the adapter writer, and notes for the log.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';
import type { Module } from '../model/module.js';
import type { TextTokenizer } from '../tokenize/types.js';
import { computeDtype, type TrainConfig } from './config.js';
import { loadExamples, type Example, type LoadReport } from './data.js';
import type { TrainableModel } from './trainer.js';

export interface PreparedRun {
  model: TrainableModel & Module;
  saveAdapter: (dir: string) => void;
  train: Example[];
  validation: Example[] | undefined;
  reports: LoadReport[];
  padId: number;
  /** LoRA-wrapped module paths */
  loraModules: string[];
  notes: string[];
}

export async function prepareRun(cfg: TrainConfig, bf16Units?: readonly string[]): Promise<PreparedRun> {
  const notes: string[] = [];
  const compute = computeDtype(cfg.training, bf16Units);
  if (compute.note) notes.push(compute.note);
  if (!existsSync(join(cfg.model, 'config.json'))) throw new MedloraError(`model ${cfg.model}: no config.json (pass --model DIR, a Hugging Face model folder)`);
  const { loadModel } = await import('../model/load.js');
  const { applyLora } = await import('../adapt/apply.js');
  const { loadAdapter, saveAdapter } = await import('../adapt/peft-io.js');
  const model = loadModel(cfg.model, compute.dtype ? { dtype: compute.dtype } : {});
  if (cfg.quantization.load_in_4bit) {
    const { quantizeModel, formatBytes } = await import('../adapt/nf4-linear.js');
    // QLoRA keeps the output layer in full precision (bitsandbytes / PEFT recipes skip lm_head)
    const q = quantizeModel(model, { skip: ['lm_head'] });
    notes.push(`base linears quantized to NF4 (QLoRA): ${q.layers.length} layers, ${formatBytes(q.bytesBefore)} -> ${formatBytes(q.bytesAfter)}`);
  }
  // LoRA init draws from the engine RNG: seeded so a run is reproducible from its config
  manualSeed(cfg.training.seed);
  let wrapped: string[];
  let targets: string[] | string = cfg.lora.target_modules;
  if (cfg.lora.init_adapter) {
    const ad = loadAdapter(model, cfg.lora.init_adapter);
    wrapped = ad.modules;
    targets = ad.config.target_modules;
    const c = ad.config;
    if (c.r !== cfg.lora.r || c.lora_alpha !== cfg.lora.lora_alpha || c.lora_dropout !== cfg.lora.lora_dropout) {
      notes.push(`lora: r ${c.r}, lora_alpha ${c.lora_alpha}, lora_dropout ${c.lora_dropout} and target_modules come from ${cfg.lora.init_adapter} (init_adapter), not from the config`);
    }
  } else {
    wrapped = applyLora(model, { r: cfg.lora.r, lora_alpha: cfg.lora.lora_alpha, lora_dropout: cfg.lora.lora_dropout, target_modules: cfg.lora.target_modules, use_rslora: cfg.lora.use_rslora });
  }
  model.gradientCheckpointing = cfg.training.gradient_checkpointing;
  const vocabSize = model.config.vocab_size;
  let tok: TextTokenizer | undefined;
  const tokenizer = async (): Promise<TextTokenizer> => {
    if (!tok) {
      const { loadTokenizer } = await import('../tokenize/tokenizer.js');
      tok = loadTokenizer(cfg.tokenizer ?? cfg.model);
    }
    return tok;
  };
  const tr = await loadExamples(cfg.data.train, { data: cfg.data, tokenizer, vocabSize });
  const reports = [tr.report];
  let validation: Example[] | undefined;
  if (cfg.data.validation) {
    const v = await loadExamples(cfg.data.validation, { data: cfg.data, tokenizer, vocabSize });
    validation = v.examples;
    reports.push(v.report);
  }
  let padId = 0;
  if (tok) {
    const { padIdOf } = await import('../data/encode.js');
    padId = padIdOf(tok);
  }
  const save = (dir: string): void => {
    saveAdapter(model, dir, { base_model_name_or_path: cfg.model, target_modules: targets });
  };
  return { model, saveAdapter: save, train: tr.examples, validation, reports, padId, loraModules: wrapped, notes };
}

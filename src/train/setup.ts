// From a resolved config to what the Trainer needs: the model (bf16, optional 4-bit base, the fine-tuning method's
// adapters fresh or from init_adapter, through the method seam src/adapt/methods, gradient checkpointing), the train /
// validation examples, the adapter writer, and notes for the log.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, type Device } from '../tensor/index.js';
import { MedloraError, fieldError } from '../util/errors.js';
import type { Module } from '../model/module.js';
import type { TextTokenizer } from '../tokenize/types.js';
import { computeDtype as decideComputeDtype, type TrainConfig } from './config.js';
import { loadExamples, type Example, type LoadReport } from './data.js';
import type { TrainableModel } from './trainer.js';

export interface PreparedRun {
  model: TrainableModel & Module;
  saveAdapter: (dir: string) => void;
  train: Example[];
  validation: Example[] | undefined;
  reports: LoadReport[];
  padId: number;
  /** the fine-tuning method (config finetuning) */
  method: string;
  /** adapted module paths */
  loraModules: string[];
  notes: string[];
}

export async function prepareRun(
  cfg: TrainConfig,
  bf16Units?: readonly string[],
  device: Device = 'cpu',
): Promise<PreparedRun> {
  const notes: string[] = [];
  const compute = decideComputeDtype(cfg.training, bf16Units, device);
  if (compute.note) notes.push(compute.note);
  if (!existsSync(join(cfg.model, 'config.json')))
    throw fieldError('model', `model ${cfg.model}: no config.json (expected a Hugging Face checkpoint folder)`);
  (await import('../data/contract.js')).checkMaxLength(cfg.data.max_length, cfg.model, 'data.max_length');
  const { loadModel } = await import('../model/load.js');
  const { methodNamed, methodOfAdapter } = await import('../adapt/methods/index.js');
  const method = methodNamed(cfg.finetuning);
  // the base goes onto the device as it is read (and is quantized there with load_in_4bit): never two copies
  const loadOpts = { ...(compute.dtype ? { dtype: compute.dtype } : {}), device };
  let model: Awaited<ReturnType<typeof loadModel>>;
  if (cfg.quantization.load_in_4bit) {
    const { loadModelNf4, formatBytes } = await import('../adapt/nf4-linear.js');
    // each base linear is quantized as it is read, so the full-precision base is never resident; QLoRA keeps the
    // output layer in full precision (bitsandbytes / PEFT recipes skip lm_head)
    const r = loadModelNf4(cfg.model, loadOpts, { skip: ['lm_head'] });
    model = r.model;
    const q = r.report;
    notes.push(
      `base linears quantized to NF4 (QLoRA) while loading: ${q.layers.length} layers, ${formatBytes(q.bytesBefore)} -> ${formatBytes(q.bytesAfter)}`,
    );
  } else model = loadModel(cfg.model, loadOpts);
  // adapter init draws from the engine RNG: seeded so a run is reproducible from its config
  manualSeed(cfg.training.seed);
  const section = cfg[method.configSection] as unknown as Record<string, unknown> & {
    target_modules: string[] | string;
    init_adapter: string | null;
  };
  let wrapped: string[];
  let targets: string[] | string = section.target_modules;
  if (section.init_adapter) {
    const from = methodOfAdapter(section.init_adapter);
    if (from.name !== method.name)
      throw new MedloraError(
        `${method.configSection}.init_adapter ${section.init_adapter}: holds a ${from.name} adapter but finetuning is ${method.name}`,
      );
    const ad = method.load(model, section.init_adapter);
    wrapped = ad.modules;
    targets = ad.config.target_modules as string[] | string;
    const differ = Object.keys(section).filter(
      (k) => k in ad.config && k !== 'init_adapter' && JSON.stringify(ad.config[k]) !== JSON.stringify(section[k]),
    );
    if (differ.length)
      notes.push(
        `${method.configSection}: ${differ.map((k) => `${k} ${JSON.stringify(ad.config[k])}`).join(', ')} come from ${section.init_adapter} (init_adapter), not from the config`,
      );
  } else {
    wrapped = method.apply(model, section as never);
  }
  // a method that trains base tensors (Adapter-V2's norms) trains them in the base's dtype: say so when that is not F32
  const low = method.trainable(model).filter(([, t]) => t.dtype !== 'f32');
  if (low.length)
    notes.push(
      `${low.length} trainable tensor(s) are ${[...new Set(low.map(([, t]) => t.dtype))].join('/')} like the base (e.g. ${low[0]![0]}): AdamW updates them in that dtype`,
    );
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
  // the training contract travels with every adapter saved (src/data/contract.ts: medlora_contract.json)
  const { trainingContract } = await import('./contract.js');
  const { writeContract } = await import('../data/contract.js');
  const computeDtype =
    model.parameters().find((p) => p.dtype === 'f32' || p.dtype === 'bf16' || p.dtype === 'f16')?.dtype ?? 'f32';
  const contract = await trainingContract(cfg, { format: tr.report.format, computeDtype, tok });
  const save = (dir: string): void => {
    method.save(model, dir, { base_model_name_or_path: cfg.model, target_modules: targets });
    writeContract(dir, contract);
  };
  return {
    model,
    saveAdapter: save,
    train: tr.examples,
    validation,
    reports,
    padId,
    method: method.name,
    loraModules: wrapped,
    notes,
  };
}

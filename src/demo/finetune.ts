// Demo step 3: LoRA fine-tuning on ddi-triplets, run exactly as `medlora train` runs it (runTraining: progress bar,
// metrics.jsonl, adapter/, report.html), with the DrugBank DDI preset (configs/ddi-llama31-8b.yaml: LoRA on every
// projection and lm_head) as the config file and demo-sized values given as flags on top of it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readConfigFile, resolveConfig, type TrainConfig } from '../train/config.js';
import { runTraining } from '../train/run.js';
import { trainingGenerateEval } from '../eval/run-eval.js';
import type { TrainResult } from '../train/trainer.js';
import { MedloraError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';
import type { DemoSettings } from './settings.js';

/** The preset the demo's fine-tune is shaped by. */
export const DEMO_PRESET = join('configs', 'ddi-llama31-8b.yaml');

export interface FinetuneOptions {
  /** base model folder (config.json + weights) */
  model: string;
  /** tokenizer folder (default: the model folder) */
  tokenizer?: string;
  train: string;
  validation: string;
  /** the run directory: metrics.jsonl, adapter/, report.html, config.resolved.json */
  runDir: string;
  settings: DemoSettings;
  seed: number;
  /** alpaca for real checkpoints without a chat template, chat for the demo model */
  promptStyle: 'alpaca' | 'chat';
  /** bf16 for the frozen base (real checkpoints stored in bf16) */
  bf16?: boolean;
  /** the fine-tuning method (config finetuning; default: the preset's, LoRA) */
  method?: string;
  /** Adapter-V2's first layer with a prefix (the litgpt default 2 leaves none in a 2-layer model) */
  adapterStartLayer?: number;
}

/** The overrides the demo puts on top of the preset, as `medlora train` flags (shown to the user). */
export function finetuneOverrides(o: FinetuneOptions): Array<[string, string]> {
  const f = o.settings.finetune;
  const out: Array<[string, string]> = [
    ['model', o.model],
    ['output_dir', o.runDir],
    ['data.train', o.train],
    ['data.validation', o.validation],
    ['data.prompt_style', o.promptStyle],
    ['data.max_length', String(f.maxLength)],
    ['lora.r', String(f.r)],
    ['lora.lora_alpha', String(f.alpha)],
    ['lora.lora_dropout', '0'],
    ['training.learning_rate', String(f.learningRate)],
    ['training.lr_scheduler_type', 'cosine'],
    ['training.warmup_steps', String(f.warmup)],
    ['training.max_steps', String(f.steps)],
    ['training.per_device_train_batch_size', String(f.batch)],
    ['training.per_device_eval_batch_size', '64'],
    ['training.gradient_accumulation_steps', '1'],
    // a few-MB model on a CPU: plain AdamW in f32 without activation recomputation is the fast choice
    ['training.optim', 'adamw_torch'],
    ['training.bf16', String(o.bf16 ?? false)],
    ['training.gradient_checkpointing', 'false'],
    ['training.logging_steps', String(Math.max(1, Math.min(10, Math.floor(f.steps / 20))))],
    ['training.eval_steps', String(Math.max(1, Math.floor(f.steps / 4)))],
    ['training.save_steps', 'null'],
    // at each evaluation also generate answers for a validation sample and log their F1 (the report's F1 curve)
    ['training.eval_generate_steps', String(Math.max(1, Math.floor(f.steps / 4)))],
    ['training.eval_generate_samples', '32'],
    ['training.eval_generate_max_new_tokens', String(o.settings.generation.maxNewTokens)],
    ['training.seed', String(o.seed)],
  ];
  if (o.tokenizer) out.push(['tokenizer', o.tokenizer]);
  if (o.method) out.push(['finetuning', o.method]);
  if (o.method === 'adapter_v2' && o.adapterStartLayer !== undefined)
    out.push(['adapter_v2.adapter_start_layer', String(o.adapterStartLayer)]);
  return out;
}

export function finetuneConfig(o: FinetuneOptions): TrainConfig {
  const preset = join(packageRoot(), DEMO_PRESET);
  if (!existsSync(preset)) throw new MedloraError(`the demo's preset ${preset} is missing from this installation`);
  return resolveConfig(readConfigFile(preset), finetuneOverrides(o), DEMO_PRESET);
}

/** Run the fine-tune; the adapter is written to `runDir/adapter`. */
export async function finetune(
  o: FinetuneOptions,
  io: { json?: boolean; quiet?: boolean } = {},
): Promise<{ config: TrainConfig; result: TrainResult; adapter: string }> {
  const config = finetuneConfig(o);
  const result = await runTraining(config, { json: io.json, quiet: io.quiet, generateEval: trainingGenerateEval });
  return { config, result, adapter: join(o.runDir, 'adapter') };
}

// medlora's public library API (`import { ... } from 'medlora'`, package.json "exports"): load a model and adapter,
// train from a config object, evaluate, extract, and make a random checkpoint. Small functions over the modules the
// CLI uses, so the library and the CLI behave alike; lower-level pieces are re-exported for embedding apps.
import { loadExtractor, type LoadExtractorOptions } from './infer/load-extractor.js';
import { structuredTask } from './infer/generate-answers.js';
import {
  evaluateModel,
  runScores,
  trainingGenerateEval,
  type EvaluateOptions,
  type EvalRun,
  type RunScores,
} from './eval/run-eval.js';
import { extract as extractTexts, type ExtractOptions, type ExtractResult } from './infer/extract.js';
import { loadRecords } from './data/jsonl.js';
import { resolveConfig, type TrainConfig } from './train/config.js';
import { runTraining } from './train/run.js';
import type { TrainResult } from './train/trainer.js';
import type { CausalLM } from './model/causal-lm.js';
import type { LoadedTokenizer } from './tokenize/tokenizer.js';
import type { MedRecord } from './data/schema.js';
import { join } from 'node:path';

export { MedloraError } from './util/errors.js';
export { setNumThreads, getNumThreads, manualSeed, cpuFacts } from './tensor/index.js';
export { loadTokenizer } from './tokenize/tokenizer.js';
export { loadModel } from './model/load.js';
export { loadAdapter, saveAdapter } from './adapt/peft-io.js';
// several adapters (any method) over one loaded base, its weights shared rather than copied (as `medlora serve` does)
export { loadAdapterShared } from './adapt/methods/index.js';
export { writeRandomCheckpoint as initCheckpoint, type RandomCheckpointOptions } from './model/random-checkpoint.js';
export { ARCHITECTURES } from './model/presets.js';
export { resolveConfig, computeDtype, type TrainConfig } from './train/config.js';
export { loadRecords } from './data/jsonl.js';
export type { MedRecord } from './data/schema.js';
export type { CausalLM } from './model/causal-lm.js';
export type { LoadedTokenizer } from './tokenize/tokenizer.js';
export type { EvalRun, RunScores, EvaluateOptions } from './eval/run-eval.js';
export type { ExtractResult, ExtractOptions } from './infer/extract.js';
export type { TrainResult } from './train/trainer.js';

/** A model (with its adapter applied, if any) and its tokenizer. `dispose()` frees the engine memory. */
export interface Loaded {
  model: CausalLM;
  tokenizer: LoadedTokenizer;
  dispose(): void;
}

/** Load a Hugging Face model folder, its tokenizer and (optionally) a PEFT LoRA adapter. */
export function load(o: Omit<LoadExtractorOptions, 'where'>): Loaded {
  const { model, tok } = loadExtractor({ ...o, where: 'load' });
  return { model, tokenizer: tok, dispose: () => model.dispose() };
}

/**
 * Train a LoRA adapter from a config object (the keys of a configs/*.yaml file: model, output_dir, data, lora,
 * training, ...); validated, defaults filled and saved as the CLI does. The adapter is written to
 * `<output_dir>/adapter`. Quiet by default (no progress bar).
 */
export async function train(
  config: Record<string, unknown>,
  o: { quiet?: boolean; resume?: string } = {},
): Promise<TrainResult & { config: TrainConfig; adapter: string }> {
  const cfg = resolveConfig(config, [], 'config object');
  const res = await runTraining(cfg, {
    quiet: o.quiet ?? true,
    ...(o.resume ? { resume: o.resume } : {}),
    generateEval: async (m, c) => trainingGenerateEval(m, c),
  });
  return { ...res, config: cfg, adapter: join(cfg.output_dir, 'adapter') };
}

/** Evaluate on canonical records (an array, or a JSONL file) of one structured task: P/R/F1, test loss, predictions. */
export async function evaluate(
  loaded: Loaded,
  records: MedRecord[] | string,
  o: EvaluateOptions = {},
): Promise<EvalRun & { scores: RunScores }> {
  const recs = typeof records === 'string' ? (await loadRecords(records)).records : records;
  const run = evaluateModel(loaded.model, loaded.tokenizer, recs, o);
  return { ...run, scores: runScores('model', run) };
}

/** Extract a task's structured answer (with source spans) from each text. */
export function extract(loaded: Loaded, task: string, texts: string[], o: ExtractOptions = {}): ExtractResult[] {
  const t = structuredTask(task, 'task');
  return extractTexts(
    loaded.model,
    loaded.tokenizer,
    t,
    texts.map((text, i) => ({ id: String(i + 1), text })),
    o,
  ).results;
}

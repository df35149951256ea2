// Loading an extractor for inference: tokenizer + model (+ an optional adapter of any fine-tuning method), after the engine-wide
// settings. Shared by `medlora eval`, `medlora extract` and `medlora serve` (and embedding apps) so they load alike.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { setNumThreads } from '../tensor/index.js';
import { loadTokenizer, type LoadedTokenizer } from '../tokenize/tokenizer.js';
import { loadModel } from '../model/load.js';
import { loadAnyAdapter } from '../adapt/methods/index.js';
import type { CausalLM } from '../model/causal-lm.js';

export interface LoadExtractorOptions {
  /** Hugging Face model folder (config.json + safetensors + tokenizer) */
  model: string;
  /** adapter folder applied on top (any fine-tuning method: LoRA, DoRA, Adapter-V2; optional) */
  adapter?: string;
  /** tokenizer folder (default: the model folder) */
  tokenizer?: string;
  /** compute dtype (default: the checkpoint's) */
  dtype?: string;
  /** CPU threads for the engine (engine-wide) */
  threads?: number;
  /** prefix of error messages, e.g. "medlora eval" */
  where?: string;
}

export interface LoadedExtractor {
  model: CausalLM;
  tok: LoadedTokenizer;
  modelDir: string;
  adapterDir: string | null;
}

/** Load tokenizer, model and (optionally) adapter; errors name the option and what was expected. */
export function loadExtractor(o: LoadExtractorOptions): LoadedExtractor {
  const where = o.where ?? 'load';
  const dtype = o.dtype;
  if (dtype !== undefined && dtype !== 'f32' && dtype !== 'bf16') throw new MedloraError(`${where}: --dtype must be f32 or bf16, got "${dtype}"`);
  if (o.threads !== undefined) {
    if (!Number.isInteger(o.threads) || o.threads < 1) throw new MedloraError(`${where}: --threads must be a positive integer, got ${o.threads}`);
    setNumThreads(o.threads);
  }
  if (!existsSync(join(o.model, 'config.json'))) throw new MedloraError(`--model ${o.model}: no config.json (expected a Hugging Face model folder)`);
  const tok = loadTokenizer(o.tokenizer ?? o.model);
  const model = loadModel(o.model, dtype ? { dtype } : {});
  if (o.adapter !== undefined) {
    try {
      loadAnyAdapter(model, o.adapter);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return { model, tok, modelDir: o.model, adapterDir: o.adapter ?? null };
}

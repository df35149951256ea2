// Loading an extractor for inference: tokenizer + model (+ an optional adapter of any fine-tuning method), after the engine-wide
// settings. Shared by `medlora eval`, `medlora extract` and `medlora serve` (and embedding apps) so they load alike.
// An adapter's training contract (medlora_contract.json, src/data/contract.ts) decides the prompt style, max_length,
// compute dtype, chat template and per-task instructions unless the caller chooses them explicitly; an explicit
// choice that contradicts the contract wins and is reported in `warnings` (one line each). The model, its NF4 base and
// the adapter are loaded onto `device` (default auto: the CUDA device when the addon has CUDA and one is visible).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fieldError, MedloraError, prefixed } from '../util/errors.js';
import { resolveDevice, setNumThreads, type Device, type DeviceSpec, type ResolvedDevice } from '../tensor/index.js';
import { loadTokenizer, type LoadedTokenizer } from '../tokenize/tokenizer.js';
import { loadModel } from '../model/load.js';
import { loadAnyAdapter } from '../adapt/methods/index.js';
import { loadModelNf4, type QuantizeReport } from '../adapt/nf4-linear.js';
import type { CausalLM } from '../model/causal-lm.js';
import type { PromptStyle } from '../data/prompt.js';
import { TASKS } from '../data/tasks.js';
import {
  CONTRACT_FILE,
  checkMaxLength,
  readContract,
  resolveInference,
  sha256,
  type FieldNames,
  type ResolvedInference,
  type TrainingContract,
} from '../data/contract.js';

export interface LoadExtractorOptions {
  /** Hugging Face model folder (config.json + safetensors + tokenizer) */
  model: string;
  /** adapter folder applied on top (any fine-tuning method: LoRA, DoRA, Adapter-V2; optional) */
  adapter?: string;
  /** tokenizer folder (default: the model folder) */
  tokenizer?: string;
  /** compute dtype (default: the adapter contract's, else the checkpoint's) */
  dtype?: string;
  /** CPU threads for the engine (engine-wide) */
  threads?: number;
  /** prefix of error messages, e.g. "medlora eval" */
  where?: string;
  /** explicit prompt style (default: the adapter contract's, else alpaca) */
  promptStyle?: PromptStyle;
  /** explicit max_length (default: the adapter contract's, else none); null = explicitly none */
  maxLength?: number | null;
  /** the tasks the caller will run (checked against the contract's) */
  tasks?: string[];
  /** how warnings name the settings (the CLI passes its flags); default: the contract's field names */
  fieldNames?: FieldNames;
  /** read the contract from this adapter folder even when `adapter` is not applied here (eval applies its own) */
  contractFrom?: string;
  /**
   * NF4-quantize the base's linear layers while loading (as QLoRA training holds its base: src/adapt/nf4-linear.ts
   * loadModelNf4, lm_head kept in full precision), before the adapter goes on
   */
  loadIn4bit?: boolean;
  /**
   * where the model computes: 'auto' (default: the CUDA device when the addon was built with CUDA and one is visible,
   * else the CPU), 'cpu', 'cuda' or 'cuda:N' (src/tensor/device.ts resolveDevice); the adapter follows the base
   */
  device?: DeviceSpec | Device;
}

export interface LoadedExtractor {
  model: CausalLM;
  tok: LoadedTokenizer;
  modelDir: string;
  adapterDir: string | null;
  /** the adapter's training contract, or null (no adapter, or a plain PEFT adapter) */
  contract: TrainingContract | null;
  /** the settings to prompt and generate with (explicit > contract > defaults) */
  settings: ResolvedInference;
  /** one line each: explicit choices that contradict the contract, a different base model or chat template */
  warnings: string[];
  /** with loadIn4bit: what was quantized (layers, bytes before and after) */
  quantized?: QuantizeReport;
  /** the device the model was loaded onto */
  device: Device;
  /** how `auto` chose a CUDA device, for the caller's log (absent when the device was named or is the CPU) */
  deviceNote?: string;
}

const builtinInstruction = (t: string): string | undefined =>
  (TASKS as Record<string, { instruction: string } | undefined>)[t]?.instruction;

/** The settings an adapter's contract gives (no model loaded): what loadExtractor resolves, for callers that load themselves. */
export function inferenceSettings(
  adapterDir: string | null | undefined,
  explicit: Pick<LoadExtractorOptions, 'promptStyle' | 'maxLength' | 'tasks' | 'dtype' | 'fieldNames'>,
): { contract: TrainingContract | null; settings: ResolvedInference } {
  const contract = adapterDir ? readContract(adapterDir) : null;
  const settings = resolveInference(
    contract,
    {
      ...(explicit.promptStyle !== undefined ? { prompt_style: explicit.promptStyle } : {}),
      ...(explicit.maxLength !== undefined ? { max_length: explicit.maxLength } : {}),
      ...(explicit.dtype !== undefined ? { compute_dtype: explicit.dtype } : {}),
      ...(explicit.tasks !== undefined ? { tasks: explicit.tasks } : {}),
    },
    {
      where: adapterDir ? join(adapterDir, CONTRACT_FILE) : CONTRACT_FILE,
      ...(explicit.fieldNames ? { names: explicit.fieldNames } : {}),
      builtinInstruction,
    },
  );
  return { contract, settings };
}

/** A warning when `modelDir`'s config.json is not the one the contract's adapter was trained on. */
export function baseModelWarning(c: TrainingContract | null, modelDir: string, where: string): string | undefined {
  const f = join(modelDir, 'config.json');
  if (!c?.base_model.config_sha256 || !existsSync(f)) return undefined;
  if (sha256(readFileSync(f)) === c.base_model.config_sha256) return undefined;
  return `${f} differs from the config.json of the base the adapter was trained on (${c.base_model.path}, base_model in ${where}); the adapter may not fit this model`;
}

/** Load tokenizer, model and (optionally) adapter; errors name the option and what was expected. */
export function loadExtractor(o: LoadExtractorOptions): LoadedExtractor {
  const where = o.where ?? 'load';
  if (o.dtype !== undefined && o.dtype !== 'f32' && o.dtype !== 'bf16')
    throw fieldError('dtype', `${where}: dtype must be f32 or bf16, got "${o.dtype}"`);
  if (o.threads !== undefined) {
    if (!Number.isInteger(o.threads) || o.threads < 1)
      throw fieldError('threads', `${where}: threads must be a positive integer, got ${o.threads}`);
    setNumThreads(o.threads);
  }
  // before anything is read: a device this build or machine cannot honour fails first, naming the setting
  const resolved = ((): ResolvedDevice => {
    try {
      return resolveDevice(o.device ?? 'auto', { what: 'device', field: 'device' });
    } catch (e) {
      throw e instanceof MedloraError ? prefixed(`${where}: `, e) : e;
    }
  })();
  if (!existsSync(join(o.model, 'config.json')))
    throw fieldError('model', `model ${o.model}: no config.json (expected a Hugging Face checkpoint folder)`);
  const contractDir = o.adapter ?? o.contractFrom;
  const { contract, settings } = inferenceSettings(contractDir, o);
  const cfile = contractDir ? join(contractDir, CONTRACT_FILE) : CONTRACT_FILE;
  const warnings = [...settings.warnings];
  checkMaxLength(settings.max_length, o.model, o.fieldNames?.max_length ?? 'max_length');
  const bw = baseModelWarning(contract, o.model, cfile);
  if (bw) warnings.push(bw);
  let tok = loadTokenizer(o.tokenizer ?? o.model);
  // the chat template training rendered its prompts with: used unless the caller chose the tokenizer folder
  const ct = contract?.prompt?.chat_template;
  if (
    ct &&
    settings.prompt_style === 'chat' &&
    (tok.chatTemplate === undefined || sha256(tok.chatTemplate) !== ct.sha256)
  ) {
    if (o.tokenizer !== undefined) {
      warnings.push(
        `the chat template of ${o.tokenizer} differs from the one training used (prompt.chat_template in ${cfile}); using ${o.tokenizer}'s`,
      );
    } else {
      tok = loadTokenizer(o.model, { chatTemplate: ct.text });
      warnings.push(
        `the chat template of ${o.model} differs from the one training used; using training's (prompt.chat_template in ${cfile}, from ${ct.source})`,
      );
    }
  }
  // a QLoRA adapter learned its update against the NF4-rounded base: over the full-precision base the outputs move a
  // little (the usual way to deploy it, but not what training computed), so say so
  if (contract?.quantization?.load_in_4bit && !o.loadIn4bit)
    warnings.push(
      `the adapter was trained over an NF4-quantized base (quantization.load_in_4bit in ${cfile}); computing over the full-precision base, whose outputs can differ slightly from training's (load_in_4bit quantizes it as training did)`,
    );
  const dtype = settings.compute_dtype;
  const load = { ...(dtype ? { dtype: dtype as 'f32' | 'bf16' | 'f16' } : {}), device: resolved.device };
  let quantized: QuantizeReport | undefined;
  let model: CausalLM;
  if (o.loadIn4bit) {
    const r = loadModelNf4(o.model, load, { skip: ['lm_head'] });
    model = r.model;
    quantized = r.report;
  } else model = loadModel(o.model, load);
  if (o.adapter !== undefined) {
    try {
      loadAnyAdapter(model, o.adapter);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return {
    model,
    tok,
    modelDir: o.model,
    adapterDir: o.adapter ?? null,
    contract,
    settings,
    warnings,
    ...(quantized ? { quantized } : {}),
    device: resolved.device,
    ...(resolved.note !== null ? { deviceNote: resolved.note } : {}),
  };
}

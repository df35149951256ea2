// The training contract: what inference must reproduce of a training run, saved beside the adapter as
// medlora_contract.json (PEFT reads only adapter_config.json + adapter_model.safetensors and ignores this file), and
// how eval / extract / serve resolve their settings from it: explicit choices win (with a warning when they contradict
// the contract), the contract comes next, today's defaults last (a plain PEFT adapter has no contract and no warning).
// Lives in src/data (below adapt, train, eval and serve) so every one of them can read it.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { PROMPT_STYLES, type PromptStyle } from './prompt.js';
import type { OverflowPolicy } from './encode.js';

/** The file name, beside adapter_config.json in every adapter folder medlora writes (final adapter and checkpoints). */
export const CONTRACT_FILE = 'medlora_contract.json';
/** Identifies the file's kind; `schema_version` is bumped when a field changes meaning (readers refuse newer ones). */
export const CONTRACT_SCHEMA = 'medlora.training-contract';
export const CONTRACT_SCHEMA_VERSION = 1;

/**
 * A task the adapter was trained on. An object (not a bare name) so that a task can later be user-defined (a name
 * plus, e.g., a JSON Schema of its answer): readers ignore keys they do not know.
 */
export interface ContractTask {
  name: string;
  /** the instruction the training prompts used (the task's fixed one, or the records' own when they all agree) */
  instruction: string;
  /** training records of this task */
  records: number;
  /** records that carried their own "instruction" different from `instruction` (0 in the usual case) */
  other_instructions: number;
  [extra: string]: unknown;
}

export interface TrainingContract {
  schema: typeof CONTRACT_SCHEMA;
  schema_version: number;
  /** medlora's package version that wrote the file */
  medlora_version: string;
  /** the base model the adapter was trained on */
  base_model: {
    /** the folder given to training (config `model`) */
    path: string;
    /** config.json's _name_or_path when it has one */
    name_or_path: string | null;
    /** sha256 of the base config.json bytes (a moved copy of the same checkpoint has the same hash) */
    config_sha256: string | null;
  };
  /** the tokenizer folder training used */
  tokenizer: { path: string };
  /** floating-point dtype the frozen base computed in during training (f32, bf16, f16) */
  compute_dtype: string;
  /** how training rows were given: canonical records (prompted by medlora) or pre-tokenized ids */
  data_format: 'records' | 'tokenized';
  /**
   * Prompt construction (null for pre-tokenized data: medlora did not build the prompts). chat_template is the
   * template text the chat prompts were rendered with, its sha256 and the folder it came from.
   */
  prompt: {
    style: PromptStyle;
    chat_template: { sha256: string; source: string; text: string } | null;
  } | null;
  /** data.max_length (null: no limit) and data.overflow */
  max_length: number | null;
  overflow: OverflowPolicy;
  tasks: ContractTask[];
  /**
   * How the frozen base was held during training: load_in_4bit = NF4-quantized (QLoRA). Absent in contracts written
   * before schema 1 had it (read as not quantized).
   */
  quantization?: { load_in_4bit: boolean };
  [extra: string]: unknown;
}

export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Write the contract into an adapter folder (the folder exists: saveAdapter made it). */
export function writeContract(adapterDir: string, c: TrainingContract): string {
  const f = join(adapterDir, CONTRACT_FILE);
  writeFileSync(f, `${JSON.stringify(c, null, 2)}\n`);
  return f;
}

/** The contract of an adapter folder, or null when it has none (a plain PEFT adapter). Errors name the file and field. */
export function readContract(adapterDir: string): TrainingContract | null {
  const f = join(adapterDir, CONTRACT_FILE);
  if (!existsSync(f)) return null;
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(f, 'utf8'));
  } catch (e) {
    throw new MedloraError(`${f}: not valid JSON (${(e as Error).message})`);
  }
  const o = v as Record<string, unknown>;
  const bad = (field: string, want: string): never => {
    throw new MedloraError(
      `${f}: field ${field} must be ${want}, got ${JSON.stringify(field.split('.').reduce<unknown>((a, k) => (a as Record<string, unknown> | undefined)?.[k], o))}`,
    );
  };
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new MedloraError(`${f}: expected a JSON object`);
  if (o.schema !== CONTRACT_SCHEMA) bad('schema', `"${CONTRACT_SCHEMA}"`);
  if (!Number.isInteger(o.schema_version) || (o.schema_version as number) < 1)
    bad('schema_version', 'a positive integer');
  if ((o.schema_version as number) > CONTRACT_SCHEMA_VERSION) {
    throw new MedloraError(
      `${f}: field schema_version is ${String(o.schema_version)}, newer than this medlora reads (${CONTRACT_SCHEMA_VERSION}); written by medlora ${String(o.medlora_version)}: upgrade medlora`,
    );
  }
  const p = o.prompt as Record<string, unknown> | null | undefined;
  if (p !== null) {
    if (!p || typeof p !== 'object') bad('prompt', 'an object or null');
    if (!(PROMPT_STYLES as readonly string[]).includes(p!.style as string))
      bad('prompt.style', PROMPT_STYLES.join(' or '));
    const ct = p!.chat_template as Record<string, unknown> | null;
    if (ct !== null && (typeof ct !== 'object' || typeof ct.text !== 'string' || typeof ct.sha256 !== 'string'))
      bad('prompt.chat_template', 'null or {sha256, source, text}');
  }
  if (o.max_length !== null && (!Number.isInteger(o.max_length) || (o.max_length as number) < 2))
    bad('max_length', 'an integer >= 2 or null');
  if (
    !Array.isArray(o.tasks) ||
    !o.tasks.every(
      (t) =>
        t &&
        typeof t === 'object' &&
        typeof (t as ContractTask).name === 'string' &&
        typeof (t as ContractTask).instruction === 'string',
    )
  ) {
    bad('tasks', 'a list of {name, instruction, ...}');
  }
  if (typeof o.compute_dtype !== 'string') bad('compute_dtype', 'a dtype name');
  return o as TrainingContract;
}

// ---------------------------------------------------------------------------------------------------------------
// resolution: explicit > contract > defaults

/** What a caller chose explicitly (undefined = not chosen: the contract decides, else the default). */
export interface InferenceChoices {
  prompt_style?: PromptStyle;
  /** null = explicitly no limit */
  max_length?: number | null;
  compute_dtype?: string;
  tasks?: string[];
}

export interface ResolvedInference {
  prompt_style: PromptStyle;
  max_length: number | undefined;
  /** undefined: the checkpoint's own dtype */
  compute_dtype: string | undefined;
  /** the contract's tasks (empty without a contract) */
  contract_tasks: string[];
  /** per task, the instruction training used when it is not the task's built-in one */
  instructions: Record<string, string>;
  /** one line each: an explicit choice that contradicts the contract (the choice wins) */
  warnings: string[];
}

/** Names of the fields as the caller spells them (the CLI maps them to flags); default: the contract's field names. */
export type FieldNames = Partial<Record<'prompt_style' | 'max_length' | 'compute_dtype' | 'tasks', string>>;

/**
 * Settings for inference from a contract (or null) and explicit choices. `where` names the contract (its file) in
 * warnings; `builtinInstruction` gives the built-in instruction of a known task (undefined for unknown ones).
 */
export function resolveInference(
  c: TrainingContract | null,
  explicit: InferenceChoices,
  o: {
    where?: string;
    names?: FieldNames;
    builtinInstruction?: (task: string) => string | undefined;
  } = {},
): ResolvedInference {
  const n = (k: keyof FieldNames): string => o.names?.[k] ?? k;
  const where = o.where ?? CONTRACT_FILE;
  const warnings: string[] = [];
  const contradicts = (k: keyof FieldNames, mine: unknown, theirs: unknown): void => {
    warnings.push(
      `${n(k)} ${String(mine)} contradicts the adapter's training contract (${k} ${String(theirs)} in ${where}); using ${String(mine)}`,
    );
  };
  let prompt_style: PromptStyle = explicit.prompt_style ?? 'alpaca';
  let max_length: number | undefined = explicit.max_length ?? undefined;
  let compute_dtype = explicit.compute_dtype;
  const instructions: Record<string, string> = {};
  if (!c) return { prompt_style, max_length, compute_dtype, contract_tasks: [], instructions, warnings };
  if (c.prompt) {
    if (explicit.prompt_style === undefined) prompt_style = c.prompt.style;
    else if (explicit.prompt_style !== c.prompt.style)
      contradicts('prompt_style', explicit.prompt_style, c.prompt.style);
  }
  if (explicit.max_length === undefined) max_length = c.max_length ?? undefined;
  else if (explicit.max_length !== c.max_length)
    contradicts('max_length', explicit.max_length ?? 'none', c.max_length ?? 'none');
  if (compute_dtype === undefined) compute_dtype = c.compute_dtype;
  else if (compute_dtype !== c.compute_dtype) contradicts('compute_dtype', compute_dtype, c.compute_dtype);
  const names = c.tasks.map((t) => t.name);
  const off = (explicit.tasks ?? []).filter((t) => !names.includes(t));
  if (off.length && names.length) {
    warnings.push(
      `${n('tasks')} ${off.join(', ')}: the adapter was trained on ${names.join(', ')} only (tasks in ${where}); answers for other tasks are untrained`,
    );
  }
  for (const t of c.tasks) if (o.builtinInstruction?.(t.name) !== t.instruction) instructions[t.name] = t.instruction;
  return { prompt_style, max_length, compute_dtype, contract_tasks: names, instructions, warnings };
}

/**
 * The most positions a model folder's config.json allows (max_position_embeddings; GPT-2's n_positions / n_ctx), or
 * undefined when it names none.
 */
export function maxPositionsOf(modelDir: string): number | undefined {
  const f = join(modelDir, 'config.json');
  if (!existsSync(f)) return undefined;
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  for (const k of ['max_position_embeddings', 'n_positions', 'n_ctx']) {
    const v = c[k];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  }
  return undefined;
}

/**
 * Refuse a max_length the model cannot hold: positions past max_position_embeddings were never trained (learned
 * position tables end there; rotary models extrapolate silently). `field` names the setting in the error.
 */
export function checkMaxLength(maxLength: number | null | undefined, modelDir: string, field = 'max_length'): void {
  if (maxLength === null || maxLength === undefined) return;
  const max = maxPositionsOf(modelDir);
  if (max !== undefined && maxLength > max) {
    throw new MedloraError(
      `${field} ${maxLength} is above the model's max_position_embeddings ${max} (${join(modelDir, 'config.json')}); use at most ${max}`,
    );
  }
}

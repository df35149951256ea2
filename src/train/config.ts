// The training config: a schema (hand-written, no dependency) whose names follow HF TrainingArguments and PEFT
// LoraConfig, a validator naming the file and key path, and resolveConfig(): schema defaults < file < flags.
// Over ~400 lines on purpose: the key table and the validator that walks it belong together (the run keys and their
// rules are in config-run-keys.ts, the JSON Schema in config-json-schema.ts).
import { defineTask, type SchemaTaskDef } from '../data/tasks/index.js';
import { readFileSync, existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { MedloraError, fieldError } from '../util/errors.js';
import { cpuFacts } from '../tensor/cpu.js';
import { DEVICE_SPEC_PATTERN } from '../tensor/device.js';
import type { Device } from '../tensor/dtype.js';
import { suggestion } from '../util/suggest.js';
import {
  checkRunKeys,
  normaliseReportTo,
  RUN_KEYS,
  RUN_SCHEDULERS,
  type IntervalStrategy,
  type ReportTarget,
  type RunSchedulerType,
  type SaveStrategy,
} from './config-run-keys.js';

export type SchedulerType = 'linear' | 'cosine' | 'constant' | 'constant_with_warmup' | RunSchedulerType;
export type OptimName = 'adamw_torch' | 'adamw_8bit' | 'paged_adamw_8bit';

export interface DataConfig {
  train: string;
  validation: string | null;
  /** 'tokenized' = rows {input_ids, labels}; 'records' = canonical records (src/data/schema.ts); 'auto' = by first row */
  format: 'auto' | 'tokenized' | 'records';
  max_length: number | null;
  prompt_style: 'alpaca' | 'chat';
  /** records whose target does not fit max_length: dropped (and reported) or an error */
  overflow: 'drop' | 'error';
}

export interface LoraSection {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[] | string;
  use_rslora: boolean;
  init_adapter: string | null;
  /** PEFT's spelling of finetuning: dora */
  use_dora: boolean;
}

/** The fine-tuning method (src/adapt/methods): lora and dora read the lora section, adapter_v2 its own. */
export type FinetuningName = 'lora' | 'dora' | 'adapter_v2';

/** LLaMA-Adapter V2 (litgpt names and defaults, litgpt/adapter_v2.py) */
export interface AdapterV2Section {
  adapter_prompt_length: number;
  adapter_start_layer: number;
  /** "all" = every linear layer including lm_head (litgpt), or names / one regex */
  target_modules: string[] | string;
  init_adapter: string | null;
}

export interface QuantizationSection {
  /** QLoRA: NF4-quantize the frozen base linears (bitsandbytes' BitsAndBytesConfig name) */
  load_in_4bit: boolean;
}

export interface TrainingSection {
  learning_rate: number;
  lr_scheduler_type: SchedulerType;
  warmup_steps: number;
  warmup_ratio: number;
  num_train_epochs: number;
  max_steps: number;
  per_device_train_batch_size: number;
  per_device_eval_batch_size: number;
  gradient_accumulation_steps: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  max_grad_norm: number;
  optim: OptimName;
  bf16: boolean;
  /** auto: bf16 when `bf16` and the CPU has bf16 units, else f32 (bf16 asked); bf16 / f32: as given (computeDtype) */
  compute_dtype: 'auto' | 'f32' | 'bf16';
  gradient_checkpointing: boolean;
  /** auto | cpu | cuda | cuda:N (src/tensor/device.ts resolveDevice) */
  device: string;
  logging_steps: number;
  eval_steps: number | null;
  /** generation-based F1 on a validation sample every N updates (null: off); the hook is supplied by the caller */
  eval_generate_steps: number | null;
  eval_generate_samples: number;
  eval_generate_max_new_tokens: number;
  save_steps: number | null;
  save_total_limit: number | null;
  seed: number;
  shuffle: boolean;
  // ---- run keys of issue 17 (HF TrainingArguments names; see RUN_KEYS below)
  report_to: ReportTarget[];
  logging_strategy: IntervalStrategy | null;
  eval_strategy: IntervalStrategy | null;
  save_strategy: SaveStrategy | null;
  load_best_model_at_end: boolean;
  metric_for_best_model: string | null;
  greater_is_better: boolean | null;
  early_stopping_patience: number | null;
  early_stopping_threshold: number;
  neftune_noise_alpha: number | null;
  /** padding-free packing of each micro-batch (TRL SFTConfig padding_free) */
  padding_free: boolean;
  fp16: boolean;
  resume_from_checkpoint: string | boolean | null;
  lr_scheduler_kwargs: Record<string, unknown>;
}

export interface TrainConfig {
  model: string;
  tokenizer: string | null;
  output_dir: string;
  finetuning: FinetuningName;
  data: DataConfig;
  lora: LoraSection;
  adapter_v2: AdapterV2Section;
  quantization: QuantizationSection;
  training: TrainingSection;
  /** a user-defined task {name, instruction, schema} (src/data/tasks/schema-task.ts); registered when validated */
  task?: SchemaTaskDef;
}

// ---------------------------------------------------------------------------------------------------------------
// schema

export type Kind =
  | { t: 'number'; min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean }
  | { t: 'int'; min?: number }
  | { t: 'string' }
  | { t: 'device' }
  | { t: 'bool' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'modules' }
  | { t: 'report_to' }
  | { t: 'bool_or_string' }
  | { t: 'object' };

export interface Field {
  kind: Kind;
  doc: string;
  /** undefined = required */
  default?: unknown;
  nullable?: boolean;
}

export type Section = Record<string, Field>;

// Defaults: HF TrainingArguments (transformers 4.4x, training_args.py) and PEFT LoraConfig (peft/tuners/lora/config.py)
// where those define the name; medlora's own choices are marked.
export const TOP: Section = {
  // the doc avoids the bare word "model": the CLI names a field's flag wherever the field's name appears in a message
  model: { kind: { t: 'string' }, doc: 'Hugging Face checkpoint folder (config.json + safetensors)' },
  tokenizer: {
    kind: { t: 'string' },
    default: null,
    nullable: true,
    doc: 'tokenizer folder (default: the model folder)',
  },
  output_dir: { kind: { t: 'string' }, doc: 'run directory' },
  finetuning: {
    kind: { t: 'enum', values: ['lora', 'dora', 'adapter_v2'] },
    default: 'lora',
    doc: 'fine-tuning method: lora, dora (PEFT use_dora) or adapter_v2 (LLaMA-Adapter V2)',
  },
};
const DATA: Section = {
  train: { kind: { t: 'string' }, doc: 'training JSONL file' },
  validation: { kind: { t: 'string' }, default: null, nullable: true, doc: 'validation JSONL file' },
  format: { kind: { t: 'enum', values: ['auto', 'tokenized', 'records'] }, default: 'auto', doc: 'row format' },
  max_length: { kind: { t: 'int', min: 2 }, default: null, nullable: true, doc: 'maximum tokens per example' },
  prompt_style: {
    kind: { t: 'enum', values: ['alpaca', 'chat'] },
    default: 'alpaca',
    doc: 'prompt format for records',
  },
  overflow: {
    kind: { t: 'enum', values: ['drop', 'error'] },
    default: 'drop',
    doc: 'over-long records: drop or error',
  },
};
const LORA: Section = {
  r: { kind: { t: 'int', min: 1 }, default: 8, doc: 'LoRA rank (PEFT default 8)' },
  lora_alpha: { kind: { t: 'number', min: 0, minExclusive: true }, default: 8, doc: 'LoRA alpha (PEFT default 8)' },
  lora_dropout: {
    kind: { t: 'number', min: 0, max: 1, maxExclusive: true },
    default: 0,
    doc: 'LoRA dropout (PEFT default 0)',
  },
  // PEFT's default (None) means "the architecture's known targets"; medlora asks for them explicitly except q/v,
  // which is what PEFT picks for llama (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)
  target_modules: {
    kind: { t: 'modules' },
    default: ['q_proj', 'v_proj'],
    doc: 'module names, one regex string, or all-linear (PEFT: every linear layer but the output head)',
  },
  use_rslora: { kind: { t: 'bool' }, default: false, doc: 'scale alpha/sqrt(r)' },
  init_adapter: { kind: { t: 'string' }, default: null, nullable: true, doc: 'start from this PEFT adapter folder' },
  use_dora: { kind: { t: 'bool' }, default: false, doc: 'DoRA (PEFT spelling of finetuning: dora)' },
};
// litgpt Config defaults (adapter_prompt_length 10, adapter_start_layer 2); targets: every linear layer and lm_head
const ADAPTER_V2: Section = {
  adapter_prompt_length: {
    kind: { t: 'int', min: 1 },
    default: 10,
    doc: 'prefix rows per adapted layer (litgpt default 10)',
  },
  adapter_start_layer: { kind: { t: 'int', min: 0 }, default: 2, doc: 'first layer with a prefix (litgpt default 2)' },
  target_modules: {
    kind: { t: 'modules' },
    default: 'all',
    doc: 'linear layers with adapter bias/scale: "all" (incl. lm_head), names or a regex',
  },
  init_adapter: {
    kind: { t: 'string' },
    default: null,
    nullable: true,
    doc: 'start from this Adapter-V2 adapter folder',
  },
};
const QUANT: Section = {
  load_in_4bit: { kind: { t: 'bool' }, default: false, doc: 'NF4-quantize the frozen base (QLoRA)' },
};
// ---- run keys (issue 17): config-run-keys.ts
export {
  bestMetricName,
  REPORT_TARGETS,
  type IntervalStrategy,
  type ReportTarget,
  type RunSchedulerType,
  type SaveStrategy,
} from './config-run-keys.js';

const TRAINING: Section = {
  learning_rate: { kind: { t: 'number', min: 0 }, default: 5e-5, doc: 'peak learning rate (HF default 5e-5)' },
  lr_scheduler_type: {
    kind: { t: 'enum', values: ['linear', 'cosine', 'constant', 'constant_with_warmup', ...RUN_SCHEDULERS] },
    default: 'linear',
    doc: 'HF default linear',
  },
  warmup_steps: { kind: { t: 'int', min: 0 }, default: 0, doc: 'warmup updates (wins over warmup_ratio when > 0)' },
  warmup_ratio: { kind: { t: 'number', min: 0, max: 1 }, default: 0, doc: 'warmup as a fraction of all updates' },
  num_train_epochs: {
    kind: { t: 'number', min: 0, minExclusive: true },
    default: 3,
    doc: 'HF default 3 (ignored when max_steps > 0)',
  },
  max_steps: {
    kind: { t: 'int', min: -1 },
    default: -1,
    doc: 'total updates; -1 = from num_train_epochs (HF default -1)',
  },
  per_device_train_batch_size: { kind: { t: 'int', min: 1 }, default: 8, doc: 'HF default 8' },
  per_device_eval_batch_size: { kind: { t: 'int', min: 1 }, default: 8, doc: 'HF default 8' },
  gradient_accumulation_steps: { kind: { t: 'int', min: 1 }, default: 1, doc: 'micro-batches per update' },
  weight_decay: { kind: { t: 'number', min: 0 }, default: 0, doc: 'decoupled weight decay (HF default 0)' },
  adam_beta1: { kind: { t: 'number', min: 0, max: 1, maxExclusive: true }, default: 0.9, doc: 'HF default 0.9' },
  adam_beta2: { kind: { t: 'number', min: 0, max: 1, maxExclusive: true }, default: 0.999, doc: 'HF default 0.999' },
  adam_epsilon: { kind: { t: 'number', min: 0, minExclusive: true }, default: 1e-8, doc: 'HF default 1e-8' },
  max_grad_norm: { kind: { t: 'number', min: 0 }, default: 1.0, doc: 'global-norm clip; 0 = off (HF default 1.0)' },
  optim: {
    kind: { t: 'enum', values: ['adamw_torch', 'adamw_8bit', 'paged_adamw_8bit'] },
    default: 'adamw_torch',
    doc: 'optimizer',
  },
  bf16: {
    kind: { t: 'bool' },
    default: false,
    doc: 'run the frozen base in bfloat16 (on a CPU without bf16 units: f32, see compute_dtype)',
  },
  compute_dtype: {
    kind: { t: 'enum', values: ['auto', 'f32', 'bf16'] },
    default: 'auto',
    doc: 'auto: bf16 if asked and the CPU has bf16 units (AVX512-BF16 / AMX), else f32; bf16 forces it (medlora; the run records the choice)',
  },
  gradient_checkpointing: { kind: { t: 'bool' }, default: false, doc: 'recompute activations in backward' },
  device: {
    kind: { t: 'device' },
    default: 'auto',
    doc: 'where to train: auto = the CUDA device of this rank when the addon has CUDA and one is visible, else cpu (medlora; HF picks CUDA likewise); the run records the device used',
  },
  logging_steps: { kind: { t: 'int', min: 1 }, default: 500, doc: 'log every N updates (HF default 500)' },
  eval_steps: {
    kind: { t: 'int', min: 1 },
    default: null,
    nullable: true,
    doc: 'evaluate every N updates (null: only at the end)',
  },
  eval_generate_steps: {
    kind: { t: 'int', min: 1 },
    default: null,
    nullable: true,
    doc: 'generate answers for a validation sample and log F1 every N updates (medlora; null: off)',
  },
  eval_generate_samples: {
    kind: { t: 'int', min: 1 },
    default: 32,
    doc: 'validation records (the first N) scored by eval_generate_steps',
  },
  eval_generate_max_new_tokens: {
    kind: { t: 'int', min: 1 },
    default: 256,
    doc: 'token budget per generated answer for eval_generate_steps',
  },
  save_steps: {
    kind: { t: 'int', min: 1 },
    default: 500,
    nullable: true,
    doc: 'checkpoint every N updates (HF default 500; null = never)',
  },
  save_total_limit: {
    kind: { t: 'int', min: 1 },
    default: null,
    nullable: true,
    doc: 'keep only the N newest checkpoints',
  },
  seed: { kind: { t: 'int', min: 0 }, default: 42, doc: 'seed for shuffling, LoRA init and dropout (HF default 42)' },
  shuffle: {
    kind: { t: 'bool' },
    default: true,
    doc: 'shuffle training rows each epoch (medlora; HF always shuffles)',
  },
  ...RUN_KEYS,
};

export const SECTIONS: Record<string, Section> = {
  data: DATA,
  lora: LORA,
  adapter_v2: ADAPTER_V2,
  quantization: QUANT,
  training: TRAINING,
};

/** Every leaf path ("training.max_steps", "model"), for overrides and hints. */
export function allKeyPaths(): string[] {
  const out = Object.keys(TOP);
  for (const [s, sec] of Object.entries(SECTIONS)) for (const k of Object.keys(sec)) out.push(`${s}.${k}`);
  return out;
}

/** Short flag names: `--model`, `--output`, and every leaf name that is unique across sections (`--max_steps`). */
export function shortForms(): Map<string, string> {
  const m = new Map<string, string>([['output', 'output_dir']]);
  const count = new Map<string, number>();
  for (const p of allKeyPaths()) {
    const leaf = p.split('.').pop()!;
    count.set(leaf, (count.get(leaf) ?? 0) + 1);
  }
  for (const p of allKeyPaths()) {
    const leaf = p.split('.').pop()!;
    if (count.get(leaf) === 1) m.set(leaf, p);
  }
  // LoRA's keys kept their short flags when adapter_v2 (with the same leaf names) came
  m.set('target_modules', 'lora.target_modules');
  m.set('init_adapter', 'lora.init_adapter');
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// validation

/** " (did you mean x?)" when the key lives in another section; otherwise the closest keys of this section and all of them. */
export function didYouMean(key: string, here: readonly string[], prefix: string): string {
  const leaf = key.split('.').pop()!;
  const elsewhere = allKeyPaths().find((p) => p.endsWith(`.${leaf}`) && p !== `${prefix}${leaf}`);
  if (elsewhere && !here.includes(leaf)) return ` (did you mean ${elsewhere}?)`;
  return suggestion(
    leaf,
    here.map((k) => `${prefix}${k}`),
  );
}

function describe(k: Kind): string {
  switch (k.t) {
    case 'number':
      return `a number${k.min !== undefined ? ` ${k.minExclusive ? '>' : '>='} ${k.min}` : ''}${k.max !== undefined ? ` and ${k.maxExclusive ? '<' : '<='} ${k.max}` : ''}`;
    case 'int':
      return `an integer${k.min !== undefined ? ` >= ${k.min}` : ''}`;
    case 'string':
      return 'a string';
    case 'device':
      return 'auto, cpu, cuda or cuda:N';
    case 'bool':
      return 'true or false';
    case 'enum':
      return `one of ${k.values.join(', ')}`;
    case 'modules':
      return 'a non-empty list of module names, a regex string, or all-linear';
    case 'report_to':
      return 'a list of integrations (tensorboard), "all" or "none"';
    case 'bool_or_string':
      return 'true, false or a path';
    case 'object':
      return 'a mapping of keys to values';
  }
}

function checkValue(where: string, path: string, f: Field, v: unknown): unknown {
  if (v === null) {
    if (f.nullable) return null;
    throw new MedloraError(`${where}: ${path} must be ${describe(f.kind)}, got null`);
  }
  const bad = (): never => {
    throw new MedloraError(`${where}: ${path} must be ${describe(f.kind)}, got ${JSON.stringify(v)}`);
  };
  const k = f.kind;
  switch (k.t) {
    case 'number':
    case 'int': {
      if (typeof v !== 'number' || !Number.isFinite(v)) bad();
      const n = v as number;
      if (k.t === 'int' && !Number.isInteger(n)) bad();
      if (k.min !== undefined && (n < k.min || ('minExclusive' in k && k.minExclusive && n === k.min))) bad();
      if (k.t === 'number' && k.max !== undefined && (n > k.max || (k.maxExclusive && n === k.max))) bad();
      return n;
    }
    case 'string':
      if (typeof v !== 'string' || v === '') bad();
      return v;
    case 'device':
      if (typeof v !== 'string' || !DEVICE_SPEC_PATTERN.test(v)) bad();
      return v;
    case 'bool':
      if (typeof v !== 'boolean') bad();
      return v;
    case 'enum':
      if (typeof v !== 'string' || !k.values.includes(v)) bad();
      return v;
    case 'modules':
      if (typeof v === 'string') {
        // PEFT's shorthand (compared lowercased, INCLUDE_LINEAR_LAYERS_SHORTHAND): every linear layer but the output head
        if (v.toLowerCase() === 'all-linear') return 'all-linear';
        try {
          new RegExp(v);
        } catch (e) {
          throw new MedloraError(
            `${where}: ${path} regex ${JSON.stringify(v)} does not compile (${(e as Error).message})`,
          );
        }
        return v;
      }
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x !== '')) bad();
      return [...(v as string[])];
    case 'report_to':
      return normaliseReportTo(where, path, v);
    case 'bool_or_string':
      if (typeof v !== 'boolean' && (typeof v !== 'string' || v === '')) bad();
      return v;
    case 'object':
      if (!isObject(v)) bad();
      return { ...(v as Record<string, unknown>) };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Validate one section of `raw` (unknown keys rejected), filling defaults; missing required keys are reported by the caller. */
function checkSection(where: string, prefix: string, sec: Section, raw: unknown): Record<string, unknown> {
  if (raw === undefined || raw === null) raw = {};
  if (!isObject(raw))
    throw new MedloraError(
      `${where}: ${prefix.slice(0, -1) || 'config'} must be a mapping of keys to values, got ${JSON.stringify(raw)}`,
    );
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(raw)) {
    if (!(k in sec) && !(prefix === '' && (k in SECTIONS || k === 'task'))) {
      throw new MedloraError(
        `${where}: unknown key ${prefix}${k}${didYouMean(k, [...Object.keys(sec), ...(prefix === '' ? Object.keys(SECTIONS) : [])], prefix)}`,
      );
    }
  }
  for (const [k, f] of Object.entries(sec)) {
    const v = raw[k];
    if (v === undefined) {
      if (f.default === undefined) throw fieldError(`${prefix}${k}`, `${where}: ${prefix}${k} is required (${f.doc})`);
      out[k] = Array.isArray(f.default) ? [...f.default] : f.default;
    } else {
      out[k] = checkValue(where, `${prefix}${k}`, f, v);
    }
  }
  return out;
}

/** Validate a whole (merged) config object; `where` names its origin in every error. */
export function validateConfig(raw: unknown, where: string): TrainConfig {
  if (!isObject(raw)) throw new MedloraError(`${where}: expected a mapping (YAML/JSON object) at the top level`);
  const top = checkSection(where, '', TOP, raw);
  const out = { ...top } as Record<string, unknown>;
  for (const [name, sec] of Object.entries(SECTIONS)) out[name] = checkSection(where, `${name}.`, sec, raw[name]);
  if (raw.task !== undefined && raw.task !== null) {
    defineTask(raw.task, `${where}: task`);
    out.task = structuredClone(raw.task);
  }
  const c = out as unknown as TrainConfig;
  // cross-field rules
  // lora.use_dora is PEFT's spelling of finetuning: dora; resolved here so the saved config says both
  if (c.lora.use_dora) {
    if (c.finetuning === 'adapter_v2')
      throw new MedloraError(`${where}: lora.use_dora: true conflicts with finetuning: adapter_v2 (choose one method)`);
    c.finetuning = 'dora';
  } else if (c.finetuning === 'dora') c.lora.use_dora = true;
  const t = c.training;
  if (t.max_steps === 0)
    throw new MedloraError(`${where}: training.max_steps must be > 0, or -1 to use num_train_epochs`);
  if (t.warmup_steps > 0 && t.warmup_ratio > 0) {
    // HF lets warmup_steps win silently; we say so by refusing the ambiguity
    throw new MedloraError(`${where}: give training.warmup_steps or training.warmup_ratio, not both`);
  }
  checkRunKeys(where, t);
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// files and overrides

/** Read a YAML (.yaml/.yml) or JSON config file into a plain object. */
export function readConfigFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new MedloraError(`${file}: config file not found`);
  const text = readFileSync(file, 'utf8');
  let v: unknown;
  try {
    v = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true });
  } catch (e) {
    throw new MedloraError(
      `${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'} (${(e as Error).message.split('\n')[0]})`,
    );
  }
  if (v === null || v === undefined) v = {};
  if (!isObject(v)) throw new MedloraError(`${file}: expected a mapping of keys to values at the top level`);
  return v;
}

function fieldAt(path: string): Field | undefined {
  const parts = path.split('.');
  if (parts.length === 1) return TOP[parts[0]!];
  if (parts.length === 2) return SECTIONS[parts[0]!]?.[parts[1]!];
  return undefined;
}

/** An override's text value (a `key value` pair; the CLI's `--key value`) typed by the schema: numbers, true/false, null, lists as "a,b" or JSON. */
export function parseOverrideValue(path: string, raw: string): unknown {
  const f = fieldAt(path);
  if (!f) {
    // every key path is an override key (training.max_steps), and so is every unique leaf (max_steps): suggest among
    // all; the names are the error's related fields, so the CLI prints each as its flag
    const names = [...new Set([...allKeyPaths(), ...shortForms().keys()])];
    throw fieldError(
      path,
      `${path}: unknown config key${suggestion(path, allKeyPaths(), (k) => k, names)}; a key whose name is unique also works alone (max_steps)`,
      names,
    );
  }
  if (raw === 'null' && f.nullable) return null;
  switch (f.kind.t) {
    case 'number':
    case 'int': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n))
        throw fieldError(path, `${path}: expected ${describe(f.kind)}, got "${raw}"`);
      return n;
    }
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw fieldError(path, `${path}: expected true or false, got "${raw}"`);
    case 'modules':
      if (raw.startsWith('[')) {
        try {
          return JSON.parse(raw) as unknown;
        } catch {
          throw fieldError(path, `${path}: "${raw}" is not a JSON list`);
        }
      }
      return /[\\^$|()*+?[\]{}]/.test(raw) || raw === 'all-linear'
        ? raw
        : raw
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
    case 'report_to':
      return raw.startsWith('[')
        ? parseJsonFlag(path, raw)
        : raw
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
    case 'bool_or_string':
      return raw === 'true' ? true : raw === 'false' ? false : raw;
    case 'object':
      return parseJsonFlag(path, raw);
    default:
      return raw;
  }
}

function parseJsonFlag(path: string, raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    throw fieldError(path, `${path}: "${raw}" is not valid JSON`);
  }
}

/** Expand an override key to its dotted path: "max_steps" -> "training.max_steps", "output" -> "output_dir". */
export function expandKey(name: string): string {
  if (name.includes('.')) return name;
  return shortForms().get(name) ?? name;
}

/**
 * The one place precedence is decided: schema defaults < the file's values < overrides (`--key value` pairs, dotted
 * or short). `where` labels the file in errors. Returns the validated config.
 */
export function resolveConfig(
  fileConfig: Record<string, unknown>,
  overrides: ReadonlyArray<readonly [string, string]>,
  where = 'config',
): TrainConfig {
  const merged: Record<string, unknown> = structuredClone(fileConfig);
  for (const [name, raw] of overrides) {
    const path = expandKey(name);
    const value = parseOverrideValue(path, raw);
    const parts = path.split('.');
    if (parts.length === 1) merged[parts[0]!] = value;
    else {
      const sec = merged[parts[0]!];
      const obj = isObject(sec) ? sec : {};
      obj[parts[1]!] = value;
      merged[parts[0]!] = obj;
    }
  }
  return validateConfig(merged, overrides.length ? `${where} (with flags)` : where);
}

// ---------------------------------------------------------------------------------------------------------------
// compute dtype: the one place it is decided

export interface ComputeDtype {
  /** the dtype to load the model in; null = the checkpoint's own */
  dtype: 'f32' | 'bf16' | null;
  /** what the run records as training.compute_dtype (concrete whenever bf16 is in play) */
  recorded: TrainingSection['compute_dtype'];
  /** one line for the log when the choice differs from what the config asked, or is known to be slow */
  note: string | null;
}

/**
 * bf16 on a CPU without bf16 matrix units (AVX512-BF16, AMX-BF16, Arm BF16) is emulated by libtorch and far slower
 * than f32 (issue 11: 1.3 GFLOP/s bf16 against ~133 f32; a preset run 5x slower), so `bf16: true` computes in f32 there
 * unless `compute_dtype: bf16` forces it. `bf16Units` comes from /proc/cpuinfo (src/tensor/cpu.ts); tests inject it.
 */
export function computeDtype(
  t: Pick<TrainingSection, 'bf16' | 'compute_dtype'>,
  bf16Units: readonly string[] = cpuFacts().bf16Units,
  device: Device = 'cpu',
): ComputeDtype {
  if (t.compute_dtype === 'f32') return { dtype: 'f32', recorded: 'f32', note: null };
  // a GPU computes bf16 natively (Ampere and later; libtorch refuses it on older ones): the CPU's question does not arise
  if (device !== 'cpu')
    return t.bf16 || t.compute_dtype === 'bf16'
      ? { dtype: 'bf16', recorded: 'bf16', note: null }
      : { dtype: null, recorded: 'auto', note: null };
  if (t.compute_dtype === 'bf16') {
    return {
      dtype: 'bf16',
      recorded: 'bf16',
      note: bf16Units.length
        ? null
        : 'training.compute_dtype bf16: this CPU has no bf16 matrix units (AVX512-BF16 / AMX); bf16 is emulated and much slower than f32',
    };
  }
  if (!t.bf16) return { dtype: null, recorded: 'auto', note: null };
  if (bf16Units.length) return { dtype: 'bf16', recorded: 'bf16', note: null };
  return {
    dtype: 'f32',
    recorded: 'f32',
    note:
      'training.bf16: this CPU has no bf16 matrix units (AVX512-BF16 / AMX), where bf16 is emulated and ' +
      'far slower: computing in f32 (the adapter is saved as usual); training.compute_dtype: bf16 forces bf16',
  };
}

// The training config: a schema (hand-written, no dependency) whose names follow HF TrainingArguments and PEFT
// LoraConfig, a validator naming the file and key path, and resolveConfig(): schema defaults < file < flags.
import { defineTask, type SchemaTaskDef } from '../data/tasks/index.js';
import { readFileSync, existsSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { MedloraError } from '../util/errors.js';
import { suggestion } from '../util/suggest.js';

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
  gradient_checkpointing: boolean;
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

type Kind =
  | { t: 'number'; min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean }
  | { t: 'int'; min?: number }
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'modules' }
  | { t: 'report_to' }
  | { t: 'bool_or_string' }
  | { t: 'object' };

interface Field {
  kind: Kind;
  doc: string;
  /** undefined = required */
  default?: unknown;
  nullable?: boolean;
  /** how to pass it when missing, e.g. "--model DIR" */
  flag?: string;
}

type Section = Record<string, Field>;

// Defaults: HF TrainingArguments (transformers 4.4x, training_args.py) and PEFT LoraConfig (peft/tuners/lora/config.py)
// where those define the name; medlora's own choices are marked.
const TOP: Section = {
  model: { kind: { t: 'string' }, doc: 'Hugging Face model folder (config.json + safetensors)', flag: '--model DIR' },
  tokenizer: { kind: { t: 'string' }, default: null, nullable: true, doc: 'tokenizer folder (default: the model folder)' },
  output_dir: { kind: { t: 'string' }, doc: 'run directory', flag: '--output DIR' },
  finetuning: { kind: { t: 'enum', values: ['lora', 'dora', 'adapter_v2'] }, default: 'lora', doc: 'fine-tuning method: lora, dora (PEFT use_dora) or adapter_v2 (LLaMA-Adapter V2)' },
};
const DATA: Section = {
  train: { kind: { t: 'string' }, doc: 'training JSONL file', flag: '--data.train FILE' },
  validation: { kind: { t: 'string' }, default: null, nullable: true, doc: 'validation JSONL file' },
  format: { kind: { t: 'enum', values: ['auto', 'tokenized', 'records'] }, default: 'auto', doc: 'row format' },
  max_length: { kind: { t: 'int', min: 2 }, default: null, nullable: true, doc: 'maximum tokens per example' },
  prompt_style: { kind: { t: 'enum', values: ['alpaca', 'chat'] }, default: 'alpaca', doc: 'prompt format for records' },
  overflow: { kind: { t: 'enum', values: ['drop', 'error'] }, default: 'drop', doc: 'over-long records: drop or error' },
};
const LORA: Section = {
  r: { kind: { t: 'int', min: 1 }, default: 8, doc: 'LoRA rank (PEFT default 8)' },
  lora_alpha: { kind: { t: 'number', min: 0, minExclusive: true }, default: 8, doc: 'LoRA alpha (PEFT default 8)' },
  lora_dropout: { kind: { t: 'number', min: 0, max: 1, maxExclusive: true }, default: 0, doc: 'LoRA dropout (PEFT default 0)' },
  // PEFT's default (None) means "the architecture's known targets"; medlora asks for them explicitly except q/v,
  // which is what PEFT picks for llama (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)
  target_modules: { kind: { t: 'modules' }, default: ['q_proj', 'v_proj'], doc: 'module names, one regex string, or all-linear (PEFT: every linear layer but the output head)' },
  use_rslora: { kind: { t: 'bool' }, default: false, doc: 'scale alpha/sqrt(r)' },
  init_adapter: { kind: { t: 'string' }, default: null, nullable: true, doc: 'start from this PEFT adapter folder' },
  use_dora: { kind: { t: 'bool' }, default: false, doc: 'DoRA (PEFT spelling of finetuning: dora)' },
};
// litgpt Config defaults (adapter_prompt_length 10, adapter_start_layer 2); targets: every linear layer and lm_head
const ADAPTER_V2: Section = {
  adapter_prompt_length: { kind: { t: 'int', min: 1 }, default: 10, doc: 'prefix rows per adapted layer (litgpt default 10)' },
  adapter_start_layer: { kind: { t: 'int', min: 0 }, default: 2, doc: 'first layer with a prefix (litgpt default 2)' },
  target_modules: { kind: { t: 'modules' }, default: 'all', doc: 'linear layers with adapter bias/scale: "all" (incl. lm_head), names or a regex' },
  init_adapter: { kind: { t: 'string' }, default: null, nullable: true, doc: 'start from this Adapter-V2 adapter folder' },
};
const QUANT: Section = {
  load_in_4bit: { kind: { t: 'bool' }, default: false, doc: 'NF4-quantize the frozen base (QLoRA)' },
};
// ---- run keys (issue 17): reporting, strategies, best model, early stopping, NEFTune, fp16, resume, scheduler
// kwargs. Names, values and defaults are HF TrainingArguments' (transformers 5.x training_args.py) unless marked.
export type RunSchedulerType = 'cosine_with_restarts' | 'polynomial' | 'warmup_stable_decay';
const RUN_SCHEDULERS: readonly RunSchedulerType[] = ['cosine_with_restarts', 'polynomial', 'warmup_stable_decay'];
export type ReportTarget = 'tensorboard';
export type IntervalStrategy = 'steps' | 'epoch' | 'no';
export type SaveStrategy = IntervalStrategy | 'best';
/** report_to values medlora can write; HF's "all" = every available integration, "none" = [] */
const REPORT_TARGETS: readonly string[] = ['tensorboard'];
const RUN_KEYS: Section = {
  report_to: { kind: { t: 'report_to' }, default: [], doc: 'where to log besides metrics.jsonl: [tensorboard] (<output_dir>/runs/), "all" or "none" (HF default "none")' },
  logging_strategy: { kind: { t: 'enum', values: ['steps', 'epoch', 'no'] }, default: null, nullable: true, doc: 'steps | epoch | no (HF); null: every logging_steps plus the first and last update (medlora)' },
  eval_strategy: { kind: { t: 'enum', values: ['steps', 'epoch', 'no'] }, default: null, nullable: true, doc: 'steps (every eval_steps, default logging_steps) | epoch | no (HF); null: every eval_steps if set, and at the end (medlora)' },
  save_strategy: { kind: { t: 'enum', values: ['steps', 'epoch', 'no', 'best'] }, default: null, nullable: true, doc: 'steps (every save_steps and at the end) | epoch | no | best (HF); null: every save_steps (medlora)' },
  load_best_model_at_end: { kind: { t: 'bool' }, default: false, doc: 'end with the best checkpoint\'s adapter (needs matching eval/save strategies, HF rule)' },
  metric_for_best_model: { kind: { t: 'string' }, default: null, nullable: true, doc: 'eval_loss (alias loss) or a generation metric (gen_f1, gen_precision, gen_recall, gen_parse_rate); HF default loss with load_best_model_at_end' },
  greater_is_better: { kind: { t: 'bool' }, default: null, nullable: true, doc: 'default: true unless metric_for_best_model ends with "loss" (HF rule)' },
  early_stopping_patience: { kind: { t: 'int', min: 1 }, default: null, nullable: true, doc: 'stop after this many evaluations without improvement (HF EarlyStoppingCallback; null: off)' },
  early_stopping_threshold: { kind: { t: 'number', min: 0 }, default: 0, doc: 'an improvement must exceed this to reset the patience (HF EarlyStoppingCallback default 0)' },
  neftune_noise_alpha: { kind: { t: 'number', min: 0, minExclusive: true }, default: null, nullable: true, doc: 'NEFTune: uniform noise * alpha/sqrt(T*d) on the input embeddings while training (HF/TRL; null: off)' },
  padding_free: { kind: { t: 'bool' }, default: false, doc: 'pack each micro-batch into one row with per-example positions and a block-diagonal causal mask: no pad token is computed, same loss and gradients (TRL SFTConfig padding_free; medlora default off)' },
  fp16: { kind: { t: 'bool' }, default: false, doc: 'float16 mixed precision with dynamic loss scaling (CUDA only; refused on the CPU)' },
  resume_from_checkpoint: { kind: { t: 'bool_or_string' }, default: null, nullable: true, doc: 'a checkpoint folder, or true for the newest checkpoint in output_dir (the --resume flag wins)' },
  lr_scheduler_kwargs: { kind: { t: 'object' }, default: {}, doc: 'scheduler options as HF: num_cycles (cosine_with_restarts), lr_end / power (polynomial), num_decay_steps, num_stable_steps, warmup_type, decay_type, min_lr_ratio, num_cycles (warmup_stable_decay)' },
};

/** report_to as HF normalises it: "all" -> every target medlora writes, "none" -> [], a string -> [it]. */
function normaliseReportTo(where: string, path: string, v: unknown): ReportTarget[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
    throw new MedloraError(`${where}: ${path} must be a list of integrations (tensorboard), "all" or "none", got ${JSON.stringify(v)}`);
  }
  if (list.length === 1 && list[0] === 'all') return [...REPORT_TARGETS] as ReportTarget[];
  if (list.length === 1 && list[0] === 'none') return [];
  const out: ReportTarget[] = [];
  for (const x of list as string[]) {
    if (x === 'wandb') {
      throw new MedloraError(`${where}: ${path}: wandb is not supported — medlora cannot write a Weights & Biases offline run that \`wandb sync\` accepts without the wandb library, and will not pretend to; use report_to: [tensorboard] (TensorBoard event files in ${'<output_dir>'}/runs/) or none`);
    }
    if (!REPORT_TARGETS.includes(x)) throw new MedloraError(`${where}: ${path}: unknown integration ${JSON.stringify(x)} (medlora writes: ${REPORT_TARGETS.join(', ')}; or "all" / "none")`);
    if (!out.includes(x as ReportTarget)) out.push(x as ReportTarget);
  }
  return out;
}

/** lr_scheduler_kwargs allowed per scheduler, with HF's defaults (transformers optimization.py). */
const SCHEDULER_KWARGS: Record<string, Record<string, unknown>> = {
  cosine_with_restarts: { num_cycles: 1 },
  polynomial: { lr_end: 1e-7, power: 1.0 },
  warmup_stable_decay: { num_decay_steps: undefined, num_stable_steps: null, warmup_type: 'linear', decay_type: 'cosine', min_lr_ratio: 0, num_cycles: 0.5 },
};

/** The metric a best-model / early-stopping rule reads, as it is named in metrics.jsonl ("loss" -> "eval_loss"). */
export function bestMetricName(metric: string): string {
  return metric === 'loss' || metric === 'eval_loss' ? 'eval_loss' : metric.replace(/^eval_(?=gen_)/, '');
}
const BEST_METRICS = ['eval_loss', 'eval_perplexity', 'gen_f1', 'gen_precision', 'gen_recall', 'gen_parse_rate'];

/** Cross-field rules of the run keys, HF's where HF has them (TrainingArguments.__post_init__). */
function checkRunKeys(where: string, t: TrainingSection): void {
  const isNum = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
  // lr_scheduler_kwargs: only the keys of the chosen scheduler, typed, with HF defaults filled in
  const allowed = SCHEDULER_KWARGS[t.lr_scheduler_type];
  const given = t.lr_scheduler_kwargs;
  if (!allowed) {
    if (Object.keys(given).length) throw new MedloraError(`${where}: training.lr_scheduler_kwargs: ${t.lr_scheduler_type} takes no options (got ${Object.keys(given).join(', ')})`);
  } else {
    for (const k of Object.keys(given)) if (!(k in allowed)) throw new MedloraError(`${where}: unknown key training.lr_scheduler_kwargs.${k} for ${t.lr_scheduler_type} (known: ${Object.keys(allowed).join(', ')})`);
    const out: Record<string, unknown> = {};
    for (const [k, d] of Object.entries(allowed)) out[k] = given[k] === undefined ? d : given[k];
    const bad = (k: string, what: string): never => { throw new MedloraError(`${where}: training.lr_scheduler_kwargs.${k} must be ${what}, got ${JSON.stringify(out[k])}`); };
    if (t.lr_scheduler_type === 'cosine_with_restarts' && (!Number.isInteger(out.num_cycles) || (out.num_cycles as number) < 1)) bad('num_cycles', 'an integer >= 1');
    if (t.lr_scheduler_type === 'polynomial') {
      if (!isNum(out.lr_end) || (out.lr_end as number) < 0) bad('lr_end', 'a number >= 0');
      if (!isNum(out.power) || (out.power as number) <= 0) bad('power', 'a number > 0');
      // HF get_polynomial_decay_schedule_with_warmup raises the same
      if (!(t.learning_rate > (out.lr_end as number))) throw new MedloraError(`${where}: training.lr_scheduler_kwargs.lr_end (${String(out.lr_end)}) must be smaller than training.learning_rate (${t.learning_rate})`);
    }
    if (t.lr_scheduler_type === 'warmup_stable_decay') {
      if (out.num_decay_steps === undefined) throw new MedloraError(`${where}: training.lr_scheduler_kwargs.num_decay_steps is required by lr_scheduler_type warmup_stable_decay (HF get_wsd_schedule)`);
      if (!Number.isInteger(out.num_decay_steps) || (out.num_decay_steps as number) < 0) bad('num_decay_steps', 'an integer >= 0');
      if (out.num_stable_steps !== null && (!Number.isInteger(out.num_stable_steps) || (out.num_stable_steps as number) < 0)) bad('num_stable_steps', 'an integer >= 0 or null');
      for (const k of ['warmup_type', 'decay_type']) if (!['linear', 'cosine', '1-sqrt'].includes(out[k] as string)) bad(k, 'one of linear, cosine, 1-sqrt');
      if (!isNum(out.min_lr_ratio) || (out.min_lr_ratio as number) < 0 || (out.min_lr_ratio as number) > 1) bad('min_lr_ratio', 'a number in [0, 1]');
      if (!isNum(out.num_cycles)) bad('num_cycles', 'a number');
    }
    t.lr_scheduler_kwargs = out;
  }
  if (t.fp16 && t.bf16) throw new MedloraError(`${where}: give training.fp16 or training.bf16, not both`);
  // HF: metric_for_best_model defaults to "loss" with load_best_model_at_end; greater_is_better from its name
  if (t.load_best_model_at_end && t.metric_for_best_model === null) t.metric_for_best_model = 'loss';
  if (t.metric_for_best_model !== null) {
    const m = bestMetricName(t.metric_for_best_model);
    if (!BEST_METRICS.includes(m) && !/^gen_f1\/./.test(m)) throw new MedloraError(`${where}: training.metric_for_best_model ${JSON.stringify(t.metric_for_best_model)} is not a logged evaluation metric (one of loss, ${BEST_METRICS.join(', ')}, gen_f1/<task>)`);
    if (t.greater_is_better === null) t.greater_is_better = !t.metric_for_best_model.endsWith('loss');
  }
  if (t.eval_strategy === 'steps' && t.eval_steps === null) t.eval_steps = t.logging_steps; // HF falls back to logging_steps
  if (t.load_best_model_at_end) {
    // HF: the save and eval strategies must match (unless save_strategy is best), save_steps a multiple of eval_steps
    if (t.eval_strategy === null || t.eval_strategy === 'no') throw new MedloraError(`${where}: training.load_best_model_at_end needs training.eval_strategy steps or epoch`);
    if (t.save_strategy !== 'best') {
      if (t.save_strategy !== t.eval_strategy) throw new MedloraError(`${where}: training.load_best_model_at_end requires training.save_strategy (${String(t.save_strategy)}) to equal training.eval_strategy (${t.eval_strategy}), or save_strategy best (HF rule)`);
      if (t.eval_strategy === 'steps' && (t.save_steps === null || t.save_steps % t.eval_steps! !== 0)) {
        throw new MedloraError(`${where}: training.load_best_model_at_end requires training.save_steps (${String(t.save_steps)}) to be a multiple of training.eval_steps (${String(t.eval_steps)}) (HF rule)`);
      }
    }
  }
  if (t.save_strategy === 'best' && t.metric_for_best_model === null) throw new MedloraError(`${where}: training.save_strategy best needs training.metric_for_best_model`);
  if (t.save_strategy === 'steps' && t.save_steps === null) throw new MedloraError(`${where}: training.save_strategy steps needs training.save_steps`);
  if (t.early_stopping_patience !== null) {
    // HF EarlyStoppingCallback asserts both
    if (t.metric_for_best_model === null) throw new MedloraError(`${where}: training.early_stopping_patience needs training.metric_for_best_model (or load_best_model_at_end)`);
    if (t.eval_strategy === null || t.eval_strategy === 'no') throw new MedloraError(`${where}: training.early_stopping_patience needs training.eval_strategy steps or epoch`);
  }
  if (t.eval_generate_steps !== null && t.eval_strategy === 'steps' && t.eval_generate_steps !== t.eval_steps) {
    // with an eval_strategy, generation scores are part of every evaluation (as HF compute_metrics): one schedule
    throw new MedloraError(`${where}: training.eval_generate_steps (${t.eval_generate_steps}) must equal training.eval_steps (${String(t.eval_steps)}) when training.eval_strategy is steps (generation scores are computed at every evaluation)`);
  }
}

const TRAINING: Section = {
  learning_rate: { kind: { t: 'number', min: 0 }, default: 5e-5, doc: 'peak learning rate (HF default 5e-5)' },
  lr_scheduler_type: { kind: { t: 'enum', values: ['linear', 'cosine', 'constant', 'constant_with_warmup', ...RUN_SCHEDULERS] }, default: 'linear', doc: 'HF default linear' },
  warmup_steps: { kind: { t: 'int', min: 0 }, default: 0, doc: 'warmup updates (wins over warmup_ratio when > 0)' },
  warmup_ratio: { kind: { t: 'number', min: 0, max: 1 }, default: 0, doc: 'warmup as a fraction of all updates' },
  num_train_epochs: { kind: { t: 'number', min: 0, minExclusive: true }, default: 3, doc: 'HF default 3 (ignored when max_steps > 0)' },
  max_steps: { kind: { t: 'int', min: -1 }, default: -1, doc: 'total updates; -1 = from num_train_epochs (HF default -1)' },
  per_device_train_batch_size: { kind: { t: 'int', min: 1 }, default: 8, doc: 'HF default 8' },
  per_device_eval_batch_size: { kind: { t: 'int', min: 1 }, default: 8, doc: 'HF default 8' },
  gradient_accumulation_steps: { kind: { t: 'int', min: 1 }, default: 1, doc: 'micro-batches per update' },
  weight_decay: { kind: { t: 'number', min: 0 }, default: 0, doc: 'decoupled weight decay (HF default 0)' },
  adam_beta1: { kind: { t: 'number', min: 0, max: 1, maxExclusive: true }, default: 0.9, doc: 'HF default 0.9' },
  adam_beta2: { kind: { t: 'number', min: 0, max: 1, maxExclusive: true }, default: 0.999, doc: 'HF default 0.999' },
  adam_epsilon: { kind: { t: 'number', min: 0, minExclusive: true }, default: 1e-8, doc: 'HF default 1e-8' },
  max_grad_norm: { kind: { t: 'number', min: 0 }, default: 1.0, doc: 'global-norm clip; 0 = off (HF default 1.0)' },
  optim: { kind: { t: 'enum', values: ['adamw_torch', 'adamw_8bit', 'paged_adamw_8bit'] }, default: 'adamw_torch', doc: 'optimizer' },
  bf16: { kind: { t: 'bool' }, default: false, doc: 'run the frozen base in bfloat16' },
  gradient_checkpointing: { kind: { t: 'bool' }, default: false, doc: 'recompute activations in backward' },
  logging_steps: { kind: { t: 'int', min: 1 }, default: 500, doc: 'log every N updates (HF default 500)' },
  eval_steps: { kind: { t: 'int', min: 1 }, default: null, nullable: true, doc: 'evaluate every N updates (null: only at the end)' },
  eval_generate_steps: { kind: { t: 'int', min: 1 }, default: null, nullable: true, doc: 'generate answers for a validation sample and log F1 every N updates (medlora; null: off)' },
  eval_generate_samples: { kind: { t: 'int', min: 1 }, default: 32, doc: 'validation records (the first N) scored by eval_generate_steps' },
  eval_generate_max_new_tokens: { kind: { t: 'int', min: 1 }, default: 256, doc: 'token budget per generated answer for eval_generate_steps' },
  save_steps: { kind: { t: 'int', min: 1 }, default: 500, nullable: true, doc: 'checkpoint every N updates (HF default 500; null = never)' },
  save_total_limit: { kind: { t: 'int', min: 1 }, default: null, nullable: true, doc: 'keep only the N newest checkpoints' },
  seed: { kind: { t: 'int', min: 0 }, default: 42, doc: 'seed for shuffling, LoRA init and dropout (HF default 42)' },
  shuffle: { kind: { t: 'bool' }, default: true, doc: 'shuffle training rows each epoch (medlora; HF always shuffles)' },
  ...RUN_KEYS,
};

const SECTIONS: Record<string, Section> = { data: DATA, lora: LORA, adapter_v2: ADAPTER_V2, quantization: QUANT, training: TRAINING };

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
  for (const p of allKeyPaths()) { const leaf = p.split('.').pop()!; count.set(leaf, (count.get(leaf) ?? 0) + 1); }
  for (const p of allKeyPaths()) { const leaf = p.split('.').pop()!; if (count.get(leaf) === 1) m.set(leaf, p); }
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
  return suggestion(leaf, here.map((k) => `${prefix}${k}`));
}

function describe(k: Kind): string {
  switch (k.t) {
    case 'number': return `a number${k.min !== undefined ? ` ${k.minExclusive ? '>' : '>='} ${k.min}` : ''}${k.max !== undefined ? ` and ${k.maxExclusive ? '<' : '<='} ${k.max}` : ''}`;
    case 'int': return `an integer${k.min !== undefined ? ` >= ${k.min}` : ''}`;
    case 'string': return 'a string';
    case 'bool': return 'true or false';
    case 'enum': return `one of ${k.values.join(', ')}`;
    case 'modules': return 'a non-empty list of module names, a regex string, or all-linear';
    case 'report_to': return 'a list of integrations (tensorboard), "all" or "none"';
    case 'bool_or_string': return 'true, false or a path';
    case 'object': return 'a mapping of keys to values';
  }
}

function checkValue(where: string, path: string, f: Field, v: unknown): unknown {
  if (v === null) {
    if (f.nullable) return null;
    throw new MedloraError(`${where}: ${path} must be ${describe(f.kind)}, got null`);
  }
  const bad = (): never => { throw new MedloraError(`${where}: ${path} must be ${describe(f.kind)}, got ${JSON.stringify(v)}`); };
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
    case 'string': if (typeof v !== 'string' || v === '') bad(); return v;
    case 'bool': if (typeof v !== 'boolean') bad(); return v;
    case 'enum': if (typeof v !== 'string' || !k.values.includes(v)) bad(); return v;
    case 'modules':
      if (typeof v === 'string') {
        // PEFT's shorthand (compared lowercased, INCLUDE_LINEAR_LAYERS_SHORTHAND): every linear layer but the output head
        if (v.toLowerCase() === 'all-linear') return 'all-linear';
        try { new RegExp(v); } catch (e) { throw new MedloraError(`${where}: ${path} regex ${JSON.stringify(v)} does not compile (${(e as Error).message})`); }
        return v;
      }
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x !== '')) bad();
      return [...(v as string[])];
    case 'report_to': return normaliseReportTo(where, path, v);
    case 'bool_or_string': if (typeof v !== 'boolean' && (typeof v !== 'string' || v === '')) bad(); return v;
    case 'object': if (!isObject(v)) bad(); return { ...(v as Record<string, unknown>) };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Validate one section of `raw` (unknown keys rejected), filling defaults; missing required keys are reported by the caller. */
function checkSection(where: string, prefix: string, sec: Section, raw: unknown): Record<string, unknown> {
  if (raw === undefined || raw === null) raw = {};
  if (!isObject(raw)) throw new MedloraError(`${where}: ${prefix.slice(0, -1) || 'config'} must be a mapping of keys to values, got ${JSON.stringify(raw)}`);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(raw)) {
    if (!(k in sec) && !(prefix === '' && (k in SECTIONS || k === 'task'))) {
      throw new MedloraError(`${where}: unknown key ${prefix}${k}${didYouMean(k, [...Object.keys(sec), ...(prefix === '' ? Object.keys(SECTIONS) : [])], prefix)}`);
    }
  }
  for (const [k, f] of Object.entries(sec)) {
    const v = raw[k];
    if (v === undefined) {
      if (f.default === undefined) throw new MedloraError(`${where}: ${prefix}${k} is required (${f.doc})${f.flag ? `; pass ${f.flag}` : ''}`);
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
  if (raw.task !== undefined && raw.task !== null) { defineTask(raw.task, `${where}: task`); out.task = structuredClone(raw.task); }
  const c = out as unknown as TrainConfig;
  // cross-field rules
  // lora.use_dora is PEFT's spelling of finetuning: dora; resolved here so the saved config says both
  if (c.lora.use_dora) {
    if (c.finetuning === 'adapter_v2') throw new MedloraError(`${where}: lora.use_dora: true conflicts with finetuning: adapter_v2 (choose one method)`);
    c.finetuning = 'dora';
  } else if (c.finetuning === 'dora') c.lora.use_dora = true;
  const t = c.training;
  if (t.max_steps === 0) throw new MedloraError(`${where}: training.max_steps must be > 0, or -1 to use num_train_epochs`);
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
    throw new MedloraError(`${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'} (${(e as Error).message.split('\n')[0]})`);
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

/** A flag's text value typed by the schema: numbers, true/false, null, lists as "a,b" or JSON. */
export function parseOverrideValue(path: string, raw: string): unknown {
  const f = fieldAt(path);
  if (!f) {
    // every key path is a flag (--training.max_steps), and so is every unique leaf (--max_steps): suggest among all
    const names = [...new Set([...allKeyPaths(), ...shortForms().keys()])];
    throw new MedloraError(`--${path}: unknown config key${suggestion(path, allKeyPaths(), (k) => `--${k}`, names)}; a key whose name is unique also works alone (--max_steps)`);
  }
  if (raw === 'null' && f.nullable) return null;
  switch (f.kind.t) {
    case 'number':
    case 'int': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new MedloraError(`--${path}: expected ${describe(f.kind)}, got "${raw}"`);
      return n;
    }
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new MedloraError(`--${path}: expected true or false, got "${raw}"`);
    case 'modules':
      if (raw.startsWith('[')) {
        try { return JSON.parse(raw) as unknown; } catch { throw new MedloraError(`--${path}: "${raw}" is not a JSON list`); }
      }
      return /[\\^$|()*+?[\]{}]/.test(raw) || raw === 'all-linear' ? raw : raw.split(',').map((s) => s.trim()).filter(Boolean);
    case 'report_to':
      return raw.startsWith('[') ? parseJsonFlag(path, raw) : raw.split(',').map((s) => s.trim()).filter(Boolean);
    case 'bool_or_string':
      return raw === 'true' ? true : raw === 'false' ? false : raw;
    case 'object':
      return parseJsonFlag(path, raw);
    default:
      return raw;
  }
}

function parseJsonFlag(path: string, raw: string): unknown {
  try { return JSON.parse(raw) as unknown; } catch { throw new MedloraError(`--${path}: "${raw}" is not valid JSON`); }
}

/** Expand a flag name to its dotted path: "max_steps" -> "training.max_steps", "output" -> "output_dir". */
export function expandKey(name: string): string {
  if (name.includes('.')) return name;
  return shortForms().get(name) ?? name;
}

/**
 * The one place precedence is decided: schema defaults < the file's values < overrides (`--key value` pairs, dotted
 * or short). `where` labels the file in errors. Returns the validated config.
 */
export function resolveConfig(fileConfig: Record<string, unknown>, overrides: ReadonlyArray<readonly [string, string]>, where = 'config'): TrainConfig {
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

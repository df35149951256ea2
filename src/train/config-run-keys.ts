// The run keys of the training config (issue 17: reporting, strategies, best model, early stopping, NEFTune, fp16,
// resume, scheduler kwargs) and their cross-field rules; config.ts puts them in the training section and calls
// checkRunKeys. Names, values and defaults are HF TrainingArguments' (transformers 5.x training_args.py) unless marked.
import { MedloraError } from '../util/errors.js';
import type { Section, TrainingSection } from './config.js';

export type RunSchedulerType = 'cosine_with_restarts' | 'polynomial' | 'warmup_stable_decay';
export const RUN_SCHEDULERS: readonly RunSchedulerType[] = [
  'cosine_with_restarts',
  'polynomial',
  'warmup_stable_decay',
];
export type ReportTarget = 'tensorboard';
export type IntervalStrategy = 'steps' | 'epoch' | 'no';
export type SaveStrategy = IntervalStrategy | 'best';
/** report_to values medlora can write; HF's "all" = every available integration, "none" = [] */
export const REPORT_TARGETS: readonly string[] = ['tensorboard'];
export const RUN_KEYS: Section = {
  report_to: {
    kind: { t: 'report_to' },
    default: [],
    doc: 'where to log besides metrics.jsonl: [tensorboard] (<output_dir>/runs/), "all" or "none" (HF default "none")',
  },
  logging_strategy: {
    kind: { t: 'enum', values: ['steps', 'epoch', 'no'] },
    default: null,
    nullable: true,
    doc: 'steps | epoch | no (HF); null: every logging_steps plus the first and last update (medlora)',
  },
  eval_strategy: {
    kind: { t: 'enum', values: ['steps', 'epoch', 'no'] },
    default: null,
    nullable: true,
    doc: 'steps (every eval_steps, default logging_steps) | epoch | no (HF); null: every eval_steps if set, and at the end (medlora)',
  },
  save_strategy: {
    kind: { t: 'enum', values: ['steps', 'epoch', 'no', 'best'] },
    default: null,
    nullable: true,
    doc: 'steps (every save_steps and at the end) | epoch | no | best (HF); null: every save_steps (medlora)',
  },
  load_best_model_at_end: {
    kind: { t: 'bool' },
    default: false,
    doc: "end with the best checkpoint's adapter (needs matching eval/save strategies, HF rule)",
  },
  metric_for_best_model: {
    kind: { t: 'string' },
    default: null,
    nullable: true,
    doc: 'eval_loss (alias loss) or a generation metric (gen_f1, gen_precision, gen_recall, gen_parse_rate); HF default loss with load_best_model_at_end',
  },
  greater_is_better: {
    kind: { t: 'bool' },
    default: null,
    nullable: true,
    doc: 'default: true unless metric_for_best_model ends with "loss" (HF rule)',
  },
  early_stopping_patience: {
    kind: { t: 'int', min: 1 },
    default: null,
    nullable: true,
    doc: 'stop after this many evaluations without improvement (HF EarlyStoppingCallback; null: off)',
  },
  early_stopping_threshold: {
    kind: { t: 'number', min: 0 },
    default: 0,
    doc: 'an improvement must exceed this to reset the patience (HF EarlyStoppingCallback default 0)',
  },
  neftune_noise_alpha: {
    kind: { t: 'number', min: 0, minExclusive: true },
    default: null,
    nullable: true,
    doc: 'NEFTune: uniform noise * alpha/sqrt(T*d) on the input embeddings while training (HF/TRL; null: off)',
  },
  padding_free: {
    kind: { t: 'bool' },
    default: false,
    doc: 'pack each micro-batch into one row with per-example positions and a block-diagonal causal mask: no pad token is computed, same loss and gradients (TRL SFTConfig padding_free; medlora default off)',
  },
  fp16: {
    kind: { t: 'bool' },
    default: false,
    doc: 'float16 mixed precision with dynamic loss scaling (CUDA only; refused on the CPU)',
  },
  resume_from_checkpoint: {
    kind: { t: 'bool_or_string' },
    default: null,
    nullable: true,
    doc: 'a checkpoint folder, or true for the newest checkpoint in output_dir (the --resume flag wins)',
  },
  lr_scheduler_kwargs: {
    kind: { t: 'object' },
    default: {},
    doc: 'scheduler options as HF: num_cycles (cosine_with_restarts), lr_end / power (polynomial), num_decay_steps, num_stable_steps, warmup_type, decay_type, min_lr_ratio, num_cycles (warmup_stable_decay)',
  },
};

/** report_to as HF normalises it: "all" -> every target medlora writes, "none" -> [], a string -> [it]. */
export function normaliseReportTo(where: string, path: string, v: unknown): ReportTarget[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
    throw new MedloraError(
      `${where}: ${path} must be a list of integrations (tensorboard), "all" or "none", got ${JSON.stringify(v)}`,
    );
  }
  if (list.length === 1 && list[0] === 'all') return [...REPORT_TARGETS] as ReportTarget[];
  if (list.length === 1 && list[0] === 'none') return [];
  const out: ReportTarget[] = [];
  for (const x of list as string[]) {
    if (x === 'wandb') {
      throw new MedloraError(
        `${where}: ${path}: wandb is not supported — medlora cannot write a Weights & Biases offline run that \`wandb sync\` accepts without the wandb library, and will not pretend to; use report_to: [tensorboard] (TensorBoard event files in ${'<output_dir>'}/runs/) or none`,
      );
    }
    if (!REPORT_TARGETS.includes(x))
      throw new MedloraError(
        `${where}: ${path}: unknown integration ${JSON.stringify(x)} (medlora writes: ${REPORT_TARGETS.join(', ')}; or "all" / "none")`,
      );
    if (!out.includes(x as ReportTarget)) out.push(x as ReportTarget);
  }
  return out;
}

/** lr_scheduler_kwargs allowed per scheduler, with HF's defaults (transformers optimization.py). */
const SCHEDULER_KWARGS: Record<string, Record<string, unknown>> = {
  cosine_with_restarts: { num_cycles: 1 },
  polynomial: { lr_end: 1e-7, power: 1.0 },
  warmup_stable_decay: {
    num_decay_steps: undefined,
    num_stable_steps: null,
    warmup_type: 'linear',
    decay_type: 'cosine',
    min_lr_ratio: 0,
    num_cycles: 0.5,
  },
};

/** The metric a best-model / early-stopping rule reads, as it is named in metrics.jsonl ("loss" -> "eval_loss"). */
export function bestMetricName(metric: string): string {
  return metric === 'loss' || metric === 'eval_loss' ? 'eval_loss' : metric.replace(/^eval_(?=gen_)/, '');
}
const BEST_METRICS = ['eval_loss', 'eval_perplexity', 'gen_f1', 'gen_precision', 'gen_recall', 'gen_parse_rate'];

/** Cross-field rules of the run keys, HF's where HF has them (TrainingArguments.__post_init__). */
export function checkRunKeys(where: string, t: TrainingSection): void {
  const isNum = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
  // lr_scheduler_kwargs: only the keys of the chosen scheduler, typed, with HF defaults filled in
  const allowed = SCHEDULER_KWARGS[t.lr_scheduler_type];
  const given = t.lr_scheduler_kwargs;
  if (!allowed) {
    if (Object.keys(given).length)
      throw new MedloraError(
        `${where}: training.lr_scheduler_kwargs: ${t.lr_scheduler_type} takes no options (got ${Object.keys(given).join(', ')})`,
      );
  } else {
    for (const k of Object.keys(given))
      if (!(k in allowed))
        throw new MedloraError(
          `${where}: unknown key training.lr_scheduler_kwargs.${k} for ${t.lr_scheduler_type} (known: ${Object.keys(allowed).join(', ')})`,
        );
    const out: Record<string, unknown> = {};
    for (const [k, d] of Object.entries(allowed)) out[k] = given[k] === undefined ? d : given[k];
    const bad = (k: string, what: string): never => {
      throw new MedloraError(
        `${where}: training.lr_scheduler_kwargs.${k} must be ${what}, got ${JSON.stringify(out[k])}`,
      );
    };
    if (
      t.lr_scheduler_type === 'cosine_with_restarts' &&
      (!Number.isInteger(out.num_cycles) || (out.num_cycles as number) < 1)
    )
      bad('num_cycles', 'an integer >= 1');
    if (t.lr_scheduler_type === 'polynomial') {
      if (!isNum(out.lr_end) || (out.lr_end as number) < 0) bad('lr_end', 'a number >= 0');
      if (!isNum(out.power) || (out.power as number) <= 0) bad('power', 'a number > 0');
      // HF get_polynomial_decay_schedule_with_warmup raises the same
      if (!(t.learning_rate > (out.lr_end as number)))
        throw new MedloraError(
          `${where}: training.lr_scheduler_kwargs.lr_end (${String(out.lr_end)}) must be smaller than training.learning_rate (${t.learning_rate})`,
        );
    }
    if (t.lr_scheduler_type === 'warmup_stable_decay') {
      if (out.num_decay_steps === undefined)
        throw new MedloraError(
          `${where}: training.lr_scheduler_kwargs.num_decay_steps is required by lr_scheduler_type warmup_stable_decay (HF get_wsd_schedule)`,
        );
      if (!Number.isInteger(out.num_decay_steps) || (out.num_decay_steps as number) < 0)
        bad('num_decay_steps', 'an integer >= 0');
      if (
        out.num_stable_steps !== null &&
        (!Number.isInteger(out.num_stable_steps) || (out.num_stable_steps as number) < 0)
      )
        bad('num_stable_steps', 'an integer >= 0 or null');
      for (const k of ['warmup_type', 'decay_type'])
        if (!['linear', 'cosine', '1-sqrt'].includes(out[k] as string)) bad(k, 'one of linear, cosine, 1-sqrt');
      if (!isNum(out.min_lr_ratio) || (out.min_lr_ratio as number) < 0 || (out.min_lr_ratio as number) > 1)
        bad('min_lr_ratio', 'a number in [0, 1]');
      if (!isNum(out.num_cycles)) bad('num_cycles', 'a number');
    }
    t.lr_scheduler_kwargs = out;
  }
  if (t.fp16 && t.bf16) throw new MedloraError(`${where}: give training.fp16 or training.bf16, not both`);
  // HF: metric_for_best_model defaults to "loss" with load_best_model_at_end; greater_is_better from its name
  if (t.load_best_model_at_end && t.metric_for_best_model === null) t.metric_for_best_model = 'loss';
  if (t.metric_for_best_model !== null) {
    const m = bestMetricName(t.metric_for_best_model);
    if (!BEST_METRICS.includes(m) && !/^gen_f1\/./.test(m))
      throw new MedloraError(
        `${where}: training.metric_for_best_model ${JSON.stringify(t.metric_for_best_model)} is not a logged evaluation metric (one of loss, ${BEST_METRICS.join(', ')}, gen_f1/<task>)`,
      );
    if (t.greater_is_better === null) t.greater_is_better = !t.metric_for_best_model.endsWith('loss');
  }
  if (t.eval_strategy === 'steps' && t.eval_steps === null) t.eval_steps = t.logging_steps; // HF falls back to logging_steps
  if (t.load_best_model_at_end) {
    // HF: the save and eval strategies must match (unless save_strategy is best), save_steps a multiple of eval_steps
    if (t.eval_strategy === null || t.eval_strategy === 'no')
      throw new MedloraError(`${where}: training.load_best_model_at_end needs training.eval_strategy steps or epoch`);
    if (t.save_strategy !== 'best') {
      if (t.save_strategy !== t.eval_strategy)
        throw new MedloraError(
          `${where}: training.load_best_model_at_end requires training.save_strategy (${String(t.save_strategy)}) to equal training.eval_strategy (${t.eval_strategy}), or save_strategy best (HF rule)`,
        );
      if (t.eval_strategy === 'steps' && (t.save_steps === null || t.save_steps % t.eval_steps! !== 0)) {
        throw new MedloraError(
          `${where}: training.load_best_model_at_end requires training.save_steps (${String(t.save_steps)}) to be a multiple of training.eval_steps (${String(t.eval_steps)}) (HF rule)`,
        );
      }
    }
  }
  if (t.save_strategy === 'best' && t.metric_for_best_model === null)
    throw new MedloraError(`${where}: training.save_strategy best needs training.metric_for_best_model`);
  if (t.save_strategy === 'steps' && t.save_steps === null)
    throw new MedloraError(`${where}: training.save_strategy steps needs training.save_steps`);
  if (t.early_stopping_patience !== null) {
    // HF EarlyStoppingCallback asserts both
    if (t.metric_for_best_model === null)
      throw new MedloraError(
        `${where}: training.early_stopping_patience needs training.metric_for_best_model (or load_best_model_at_end)`,
      );
    if (t.eval_strategy === null || t.eval_strategy === 'no')
      throw new MedloraError(`${where}: training.early_stopping_patience needs training.eval_strategy steps or epoch`);
  }
  if (t.eval_generate_steps !== null && t.eval_strategy === 'steps' && t.eval_generate_steps !== t.eval_steps) {
    // with an eval_strategy, generation scores are part of every evaluation (as HF compute_metrics): one schedule
    throw new MedloraError(
      `${where}: training.eval_generate_steps (${t.eval_generate_steps}) must equal training.eval_steps (${String(t.eval_steps)}) when training.eval_strategy is steps (generation scores are computed at every evaluation)`,
    );
  }
}

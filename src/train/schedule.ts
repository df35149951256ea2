// Learning-rate schedules with Hugging Face semantics (transformers/optimization.py: get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup with num_cycles 0.5, get_constant_schedule[_with_warmup],
// get_cosine_with_hard_restarts_schedule_with_warmup, get_polynomial_decay_schedule_with_warmup, get_wsd_schedule;
// their options come in lr_scheduler_kwargs as HF's scheduler_specific_kwargs). The rate of update s
// (0-based) is lr * lambda(s): LambdaLR evaluates lambda at the number of scheduler.step() calls made so far, and
// the Trainer steps the scheduler after each optimizer step, so update 0 uses lambda(0) (= 0 with warmup).
import type { SchedulerType } from './config.js';
import { MedloraError } from '../util/errors.js';

export interface ScheduleSpec {
  type: SchedulerType;
  learningRate: number;
  warmupSteps: number;
  totalSteps: number;
  /** lr_scheduler_kwargs, defaults filled in (config.ts) */
  kwargs?: Record<string, unknown>;
}

/**
 * Warmup updates as HF TrainingArguments.get_warmup_steps computes them: warmup_steps when > 0, else
 * ceil(num_training_steps * warmup_ratio).
 */
export function warmupSteps(steps: number, ratio: number, total: number): number {
  return steps > 0 ? steps : Math.ceil(total * ratio);
}

/** The multiplier lambda(step) of the peak learning rate. */
export function lrLambda(spec: Omit<ScheduleSpec, 'learningRate'> & { learningRate?: number }, step: number): number {
  const { type, warmupSteps: w, totalSteps: n } = spec;
  const kw = spec.kwargs ?? {};
  if (type === 'constant') return 1;
  // warmup_stable_decay has its own warmup shapes (and a floor at min_lr_ratio)
  if (type === 'warmup_stable_decay') return wsdLambda(step, w, n, kw);
  if (step < w) return step / Math.max(1, w);
  switch (type) {
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (n - step) / Math.max(1, n - w));
    case 'cosine': {
      const progress = (step - w) / Math.max(1, n - w);
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress)));
    }
    case 'cosine_with_restarts': {
      // _get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda (num_cycles default 1)
      const cycles = (kw.num_cycles as number | undefined) ?? 1;
      const progress = (step - w) / Math.max(1, n - w);
      if (progress >= 1) return 0;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * ((cycles * progress) % 1))));
    }
    case 'polynomial': {
      // _get_polynomial_decay_schedule_with_warmup_lr_lambda: lr_init is the optimizer's lr (lr_end 1e-7, power 1)
      const lrInit = spec.learningRate;
      if (lrInit === undefined) throw new MedloraError('polynomial schedule: the peak learning rate is needed');
      const lrEnd = (kw.lr_end as number | undefined) ?? 1e-7,
        power = (kw.power as number | undefined) ?? 1;
      if (step > n) return lrEnd / lrInit;
      const decaySteps = n - w;
      if (decaySteps <= 0)
        throw new MedloraError(`polynomial schedule: warmup (${w}) must be shorter than the ${n} updates`);
      const pctRemaining = 1 - (step - w) / decaySteps;
      return ((lrInit - lrEnd) * pctRemaining ** power + lrEnd) / lrInit;
    }
    default:
      throw new MedloraError(`unknown lr_scheduler_type ${JSON.stringify(type)}`);
  }
}

/**
 * _get_wsd_scheduler_lambda: warmup (linear | cosine | 1-sqrt) from min_lr_ratio to 1, stable at 1 for
 * num_stable_steps (default: total - warmup - decay), decay (linear | cosine with num_cycles | 1-sqrt) to
 * min_lr_ratio over num_decay_steps, then min_lr_ratio.
 */
function wsdLambda(step: number, w: number, n: number, kw: Record<string, unknown>): number {
  const decay = kw.num_decay_steps as number | undefined;
  if (decay === undefined) throw new MedloraError('warmup_stable_decay needs lr_scheduler_kwargs.num_decay_steps');
  const stable = (kw.num_stable_steps as number | null | undefined) ?? n - w - decay;
  const minRatio = (kw.min_lr_ratio as number | undefined) ?? 0;
  const cycles = (kw.num_cycles as number | undefined) ?? 0.5;
  const warmupType = (kw.warmup_type as string | undefined) ?? 'linear',
    decayType = (kw.decay_type as string | undefined) ?? 'cosine';
  const shape = (kind: string, progress: number, rising: boolean): number => {
    if (kind === 'linear') return rising ? progress : 1 - progress;
    if (kind === 'cosine')
      return rising ? 0.5 * (1 - Math.cos(Math.PI * progress)) : 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress));
    if (kind === '1-sqrt') return rising ? 1 - Math.sqrt(1 - progress) : 1 - Math.sqrt(progress);
    throw new MedloraError(`warmup_stable_decay: unknown ${rising ? 'warmup' : 'decay'}_type ${JSON.stringify(kind)}`);
  };
  if (step < w) return Math.max(0, shape(warmupType, step / Math.max(1, w), true) * (1 - minRatio) + minRatio);
  if (step < w + stable) return 1;
  if (step < w + stable + decay)
    return Math.max(0, shape(decayType, (step - w - stable) / Math.max(1, decay), false) * (1 - minRatio) + minRatio);
  return minRatio;
}

/** The learning rate update `step` (0-based) uses. */
export function learningRateAt(spec: ScheduleSpec, step: number): number {
  return spec.learningRate * lrLambda(spec, step);
}

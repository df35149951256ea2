// Learning-rate schedules with Hugging Face semantics (transformers/optimization.py: get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup with num_cycles 0.5, get_constant_schedule[_with_warmup]). The rate of update s
// (0-based) is lr * lambda(s): LambdaLR evaluates lambda at the number of scheduler.step() calls made so far, and
// the Trainer steps the scheduler after each optimizer step, so update 0 uses lambda(0) (= 0 with warmup).
import type { SchedulerType } from './config.js';
import { MedloraError } from '../util/errors.js';

export interface ScheduleSpec {
  type: SchedulerType;
  learningRate: number;
  warmupSteps: number;
  totalSteps: number;
}

/**
 * Warmup updates as HF TrainingArguments.get_warmup_steps computes them: warmup_steps when > 0, else
 * ceil(num_training_steps * warmup_ratio).
 */
export function warmupSteps(steps: number, ratio: number, total: number): number {
  return steps > 0 ? steps : Math.ceil(total * ratio);
}

/** The multiplier lambda(step) of the peak learning rate. */
export function lrLambda(spec: Omit<ScheduleSpec, 'learningRate'>, step: number): number {
  const { type, warmupSteps: w, totalSteps: n } = spec;
  if (type === 'constant') return 1;
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
    default:
      throw new MedloraError(`unknown lr_scheduler_type ${JSON.stringify(type)}`);
  }
}

/** The learning rate update `step` (0-based) uses. */
export function learningRateAt(spec: ScheduleSpec, step: number): number {
  return spec.learningRate * lrLambda(spec, step);
}

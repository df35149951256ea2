// AdamW (torch.optim.AdamW semantics, run natively) and gradient-norm clipping over parameter tensors.
import { N, type Handle, type OptimHandle } from './native.js';
import { fromHandle, type Tensor } from './tensor.js';

export interface AdamWOptions {
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface AdamWState {
  /** number of step() calls */
  step: number;
  /** per-parameter update counts (a parameter without a gradient at a step is not updated) */
  paramSteps: number[];
  expAvg: Tensor[];
  expAvgSq: Tensor[];
}

/**
 * AdamW: p -= lr*wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 * Defaults are torch's: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. The learning rate is given per step.
 */
export class AdamW {
  private readonly handle: OptimHandle;
  readonly params: readonly Tensor[];

  constructor(params: readonly Tensor[], o: AdamWOptions = {}) {
    const [b1, b2] = o.betas ?? [0.9, 0.999];
    this.params = [...params];
    this.handle = N.adamwNew(
      params.map((p) => p.h),
      b1,
      b2,
      o.eps ?? 1e-8,
      o.weightDecay ?? 0.01,
    ) as OptimHandle;
  }

  step(lr: number): void {
    N.adamwStep(this.handle, lr);
  }

  /** Drop every parameter's gradient (set_to_none). */
  zeroGrad(): void {
    N.adamwZeroGrad(this.handle);
  }

  /** The live state tensors (new handles; dispose them when done). */
  state(): AdamWState {
    const s = N.adamwState(this.handle) as { step: number; paramSteps: number[]; expAvg: Handle[]; expAvgSq: Handle[] };
    return {
      step: s.step,
      paramSteps: s.paramSteps,
      expAvg: s.expAvg.map(fromHandle),
      expAvgSq: s.expAvgSq.map(fromHandle),
    };
  }

  /** Restore a state (copied into the optimizer's own tensors; shapes must match the parameters). */
  loadState(s: AdamWState): void {
    N.adamwLoadState(
      this.handle,
      s.step,
      s.paramSteps,
      s.expAvg.map((t) => t.h),
      s.expAvgSq.map((t) => t.h),
    );
  }
}

/**
 * Scale gradients so their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_: coefficient
 * maxNorm / (total + 1e-6), applied only when below 1). Returns the total norm before clipping.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  return N.clipGradNorm(
    params.map((p) => p.h),
    maxNorm,
  ) as number;
}

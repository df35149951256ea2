// Finite-difference gradient checker: compares the autograd gradient of L = sum(fn(inputs) * R) (R fixed, seeded
// pseudo-random weights) with central differences (L(x+eps) - L(x-eps)) / 2eps, element by element, in f64.
import { grad, noGrad } from './autograd.js';
import { scope } from './scope.js';
import { tensor, type Tensor } from './tensor.js';

export interface GradcheckOptions {
  /** finite-difference step (default 1e-6, as torch.autograd.gradcheck) */
  eps?: number;
  /** per element: |analytic - numeric| <= atol + rtol * |numeric| (torch's defaults 1e-5 / 1e-3) */
  atol?: number;
  rtol?: number;
  label?: string;
}

export interface GradcheckResult {
  ok: boolean;
  /** largest |analytic - numeric| over all checked elements */
  maxAbsDiff: number;
  message: string;
}

/** Deterministic weights in [-1, 1] (a small LCG, so the checker does not disturb the engine's RNG). */
function weights(n: number, seed: number): Float64Array {
  const out = new Float64Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

function asF64(t: Tensor): Float64Array {
  return t.dtype === 'f64' ? (t.toArray() as Float64Array) : Float64Array.from(t.toFloat32Array());
}

/**
 * Check d/dx of fn at the given inputs for every input with requiresGrad (f64 inputs expected; others are passed
 * through unperturbed). fn must be deterministic (seed inside it if it draws random numbers).
 */
export function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  o: GradcheckOptions = {},
): GradcheckResult {
  const eps = o.eps ?? 1e-6,
    atol = o.atol ?? 1e-5,
    rtol = o.rtol ?? 1e-3;
  const label = o.label ?? 'gradcheck';
  return scope(() => {
    const checked = inputs.map((x, i) => [x, i] as const).filter(([x]) => x.requiresGrad);
    if (checked.length === 0) throw new Error(`${label}: no input requires grad`);
    const out0 = fn(...inputs);
    const R = tensor(weights(out0.numel, 12345), { dtype: 'f64', shape: out0.shape });
    const loss = (t: Tensor): Tensor => t.to('f64').mul(R).sum();
    const analytic = grad(
      loss(out0),
      checked.map(([x]) => x),
    );
    let maxAbsDiff = 0;
    let worst = '';
    let ok = true;
    for (let c = 0; c < checked.length; c++) {
      const [x, idx] = checked[c]!;
      const base = asF64(x);
      const a = analytic[c] ? asF64(analytic[c]!) : new Float64Array(base.length);
      for (let e = 0; e < base.length; e++) {
        const at = (delta: number): number =>
          scope(() =>
            noGrad(() => {
              const moved = Float64Array.from(base);
              moved[e] = base[e]! + delta;
              const xs = inputs.map((t, j) => (j === idx ? tensor(moved, { dtype: x.dtype, shape: x.shape }) : t));
              return loss(fn(...xs)).item();
            }),
          );
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        const d = Math.abs(a[e]! - numeric);
        if (!(d <= atol + rtol * Math.abs(numeric))) ok = false;
        if (!(d <= maxAbsDiff)) {
          maxAbsDiff = Number.isNaN(d) ? Infinity : d;
          worst = `input ${idx} element ${e}: analytic ${a[e]}, numeric ${numeric}`;
        }
      }
    }
    const message =
      `${label}: max |analytic - numeric| = ${maxAbsDiff.toExponential(3)}${worst ? ` (${worst})` : ''}` +
      ` (atol ${atol}, rtol ${rtol}) -> ${ok ? 'ok' : 'FAIL'}`;
    return { ok, maxAbsDiff, message };
  });
}

/** gradcheck that prints its result and throws when the gradients disagree. */
export function assertGradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  o: GradcheckOptions = {},
): GradcheckResult {
  const r = gradcheck(fn, inputs, o);
  console.log(`  ${r.message}`);
  if (!r.ok) throw new Error(r.message);
  return r;
}

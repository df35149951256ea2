// Autograd helpers on top of the Tensor facade: grad-mode scopes, torch.autograd.grad, and activation checkpointing.
import { N, type Handle } from './native.js';
import { fromHandle, Tensor } from './tensor.js';
import { scope } from './scope.js';

/** Run fn with gradient recording set to `enabled`, restoring the previous mode even if fn throws. */
function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = N.setGradEnabled(enabled) as boolean;
  try {
    return fn();
  } finally {
    N.setGradEnabled(prev);
  }
}

/** Run fn with gradient recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Run fn with gradient recording on (torch.enable_grad), e.g. inside a noGrad region. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export function isGradEnabled(): boolean {
  return N.isGradEnabled() as boolean;
}

export interface GradOptions {
  retainGraph?: boolean;
  /** record the gradient computation itself (for higher-order gradients) */
  createGraph?: boolean;
}

/**
 * Gradients of outputs w.r.t. inputs without touching .grad (torch.autograd.grad). A scalar output needs no
 * gradOutput; inputs that do not influence the outputs get null.
 */
export function grad(
  outputs: Tensor | readonly Tensor[],
  inputs: readonly Tensor[],
  gradOutputs?: readonly Tensor[],
  o: GradOptions = {},
): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs as Tensor];
  const r = N.autogradGrad(
    outs.map((t) => t.h),
    inputs.map((t) => t.h),
    gradOutputs?.map((t) => t.h),
    o.retainGraph,
    o.createGraph ?? false,
  ) as (Handle | null)[];
  return r.map((hh) => (hh === null ? null : fromHandle(hh)));
}

/**
 * Activation checkpointing: run fn(...inputs) without keeping its intermediate activations, and run it again during
 * backward to get them back. fn must be deterministic given its inputs and parameters (dropout's RNG state is saved
 * and restored for the recomputation). Parameters captured by fn receive their gradients through backward(), even
 * when no input requires grad. As with torch's reentrant checkpoint, grad(outputs, inputs) sees gradients of the
 * checkpoint's *inputs* only (captured parameters are accumulated into .grad instead). Nesting works (tested).
 */
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor | Tensor[], inputs: readonly Tensor[]): Tensor[] {
  const segment = (handles: Handle[]): Handle[] =>
    scope(() => {
      const out = fn(...handles.map((hh) => fromHandle(hh)));
      return Array.isArray(out) ? out : [out];
    }).map((t) => t.h);
  // the scope above disposes the segment's intermediates; the native side disposes its inputs and outputs handles
  // once it has taken the tensors (the autograd graph keeps what it needs)
  const r = N.checkpoint(
    segment,
    inputs.map((t) => t.h),
  ) as Handle[];
  return r.map((hh) => fromHandle(hh));
}

/** Where backward runs: 'auto' (a worker thread when CUDA tensors are involved), 'inline', or always 'worker'. */
export function setEngineMode(mode: 'auto' | 'inline' | 'worker'): void {
  N.setEngineMode(mode);
}

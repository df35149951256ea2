// Deterministic memory management for tensors: scope(fn) disposes every tensor created while fn runs, except the
// ones it returns (tensors, or arrays / plain objects / Maps holding tensors) and the ones passed to keep().

/** What a scope can track: anything with an idempotent dispose(). */
export interface ScopeTracked {
  dispose(): void;
}

const stack: Set<ScopeTracked>[] = [];

/** Called by every tensor constructor: the innermost open scope (if any) owns the new tensor. */
export function track(t: ScopeTracked): void {
  const top = stack[stack.length - 1];
  if (top) top.add(t);
}

function collect(
  value: unknown,
  out: Set<ScopeTracked>,
  isTracked: (v: unknown) => v is ScopeTracked,
  depth = 0,
): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (isTracked(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, isTracked, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, isTracked, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value as Record<string, unknown>)) collect(v, out, isTracked, depth + 1);
  }
}

let isTrackedFn: (v: unknown) => v is ScopeTracked = (_v): _v is ScopeTracked => false;
/** Set by tensor.ts (avoids an import cycle): how to recognise a tensor inside returned values. */
export function setTrackedPredicate(f: (v: unknown) => v is ScopeTracked): void {
  isTrackedFn = f;
}

/**
 * Run fn; dispose every tensor created inside except those it returns and those kept. Returned tensors move to the
 * enclosing scope (if any). fn must be synchronous: an async fn would let other code's tensors land in this scope.
 */
export function scope<T>(fn: () => T): T {
  const mine = new Set<ScopeTracked>();
  stack.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const t of mine) t.dispose();
    throw new Error('medlora: scope(fn) needs a synchronous fn (it returned a Promise); await outside the scope');
  }
  const keepers = new Set<ScopeTracked>();
  collect(result, keepers, isTrackedFn);
  const parent = stack[stack.length - 1];
  for (const t of mine) {
    if (keepers.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Exempt tensors (or arrays / objects of them) from every open scope; the caller disposes them. Returns x. */
export function keep<T>(x: T): T {
  const found = new Set<ScopeTracked>();
  collect(x, found, isTrackedFn);
  for (const s of stack) for (const t of found) s.delete(t);
  return x;
}

/** Number of open scopes (for tests). */
export function scopeDepth(): number {
  return stack.length;
}

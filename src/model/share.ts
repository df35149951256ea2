// One set of base weights under several models (vLLM's --enable-lora idea): shareWeights(base) returns a second module
// tree whose parameters are new tensor handles onto the SAME storage as the base's (Tensor.detach(): no copy), so
// each adapter served over one base gets its own wrappers (LoRA, DoRA, Adapter-V2 replace children of the copy only)
// while the base weights sit in memory once. A wrapper that replaces a parameter (setParam) replaces the copy's
// handle and leaves the base's untouched; only an in-place write (copy_, add_ on a parameter: the optimizer) would
// reach the base, so a shared copy is for inference. The base must outlive its copies (a tied head's weight and the
// rotary tables are read through the base's objects).
import { DTYPE_SIZE, keep, Tensor } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';
import { Module } from './module.js';

/** Handles made by shareWeights (each aliases a base tensor's storage). */
const aliases = new WeakSet<Tensor>();

/** Whether `t` is a handle shareWeights made onto another model's storage (its bytes are not this model's own). */
export function isSharedWeight(t: Tensor): boolean {
  return aliases.has(t);
}

/**
 * A copy of `base`'s module tree over the same weight storage. Every module is a new object of the same class with
 * the same fields, except that child modules are the copies, and every tensor the tree holds (parameters, and
 * tensors kept in plain objects such as an NF4 layer's codes) is a new handle onto the same storage; a tensor held
 * twice (tied embeddings) stays one handle. Other objects (configs, rotary tables, accessors such as a tied head's
 * weight getter) are shared as they are. dispose() on the copy frees only its own handles and whatever was added to
 * it (adapter tensors); the base's storage lives as long as either holds it.
 */
export function shareWeights<M extends Module>(base: M): M {
  if ([...base.namedParameters()].some(([, t]) => t.disposed))
    throw new MedloraError('shareWeights: the base model has disposed parameters');
  const modules = new Map<Module, Module>();
  const tensors = new Map<Tensor, Tensor>();

  const alias = (t: Tensor): Tensor => {
    let a = tensors.get(t);
    if (!a) {
      a = keep(t.detach());
      aliases.add(a);
      tensors.set(t, a);
    }
    return a;
  };
  const remap = (v: unknown, depth: number): unknown => {
    if (v instanceof Module) return copyModule(v);
    if (v instanceof Tensor) return alias(v);
    if (depth > 4 || v === null || typeof v !== 'object') return v;
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, remap(x, depth + 1)]));
    if (Array.isArray(v)) {
      const out = v.map((x) => remap(x, depth + 1));
      return out.every((x, i) => x === v[i]) ? v : out;
    }
    if (Object.getPrototypeOf(v) === Object.prototype) {
      const out = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, remap(x, depth + 1)]));
      return Object.keys(out).every((k) => out[k] === (v as Record<string, unknown>)[k]) ? v : out;
    }
    return v;
  };
  function copyModule(m: Module): Module {
    const have = modules.get(m);
    if (have) return have;
    const c = Object.create(Object.getPrototypeOf(m) as object) as Module;
    modules.set(m, c);
    for (const [key, d] of Object.entries(Object.getOwnPropertyDescriptors(m))) {
      Object.defineProperty(c, key, 'value' in d ? { ...d, value: remap(d.value, 0) } : d);
    }
    return c;
  }
  const copy = copyModule(base) as M;
  // the copy's own tensors only: objects shared with the base (rotary tables) stay the base's to free
  Object.defineProperty(copy, 'dispose', {
    value: () => Module.prototype.dispose.call(copy),
    configurable: true,
    writable: true,
  });
  return copy;
}

/** Bytes of the model's parameters that are its own (not shareWeights handles onto another model's storage). */
export function ownParameterBytes(model: Module): number {
  const seen = new Set<Tensor>();
  let n = 0;
  for (const [, t] of model.namedParameters()) {
    if (seen.has(t) || aliases.has(t)) continue;
    seen.add(t);
    n += t.numel * DTYPE_SIZE[t.dtype];
  }
  return n;
}

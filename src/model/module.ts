// The module tree every model is built from. Child modules and parameters are fields named exactly like the Hugging
// Face keys ("model", "layers", "self_attn", "q_proj", "weight"), so a parameter's path in the tree IS its checkpoint
// key, and a wrapper (LoRA, NF4) can replace a child in place with setChild() without the model knowing.
import type { Tensor } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';

export class Module {
  private readonly _children = new Map<string, Module>();
  private readonly _params = new Map<string, Tensor>();
  /** dropout is active only while training */
  training = false;

  /** Register a child module under `name` (also stored as the field of that name). */
  protected module<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    (this as unknown as Record<string, unknown>)[name] = m;
    return m;
  }

  /** Register a parameter (or frozen buffer that belongs in the checkpoint) under `name`. */
  protected param(name: string, t: Tensor): Tensor {
    this._params.set(name, t);
    (this as unknown as Record<string, unknown>)[name] = t;
    return t;
  }

  /** Replace a registered child (e.g. a Linear by its LoRA wrapper). */
  setChild(name: string, m: Module): void {
    if (!this._children.has(name)) {
      throw new MedloraError(
        `${this.constructor.name} has no child module "${name}" (has: ${[...this._children.keys()].join(', ')})`,
      );
    }
    this._children.set(name, m);
    (this as unknown as Record<string, unknown>)[name] = m;
  }

  /** Replace a registered parameter's tensor (loading weights); the old tensor is disposed unless `keepOld`. */
  setParam(name: string, t: Tensor, keepOld = false): void {
    const old = this._params.get(name);
    if (old === undefined) {
      throw new MedloraError(
        `${this.constructor.name} has no parameter "${name}" (has: ${[...this._params.keys()].join(', ')})`,
      );
    }
    if (!keepOld && old !== t && !old.disposed) old.dispose();
    this._params.set(name, t);
    (this as unknown as Record<string, unknown>)[name] = t;
  }

  /** Drop a registered parameter (e.g. a tied head that shares the embedding). */
  protected removeParam(name: string): void {
    this._params.delete(name);
  }

  child(name: string): Module | undefined {
    return this._children.get(name);
  }

  namedChildren(): Array<[string, Module]> {
    return [...this._children];
  }

  ownParameters(): Array<[string, Tensor]> {
    return [...this._params];
  }

  /** Every module below (and including) this one, with dotted paths ("" for this one). */
  *namedModules(prefix = ''): Generator<[string, Module, Module | undefined, string]> {
    yield* walk(this, prefix, undefined, '');
  }

  /** Every parameter with its full dotted key, e.g. "model.layers.0.self_attn.q_proj.weight". */
  namedParameters(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [n, t] of m._params) out.push([path ? `${path}.${n}` : n, t]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Parameters that require gradients (what an optimizer updates). */
  trainableParameters(): Array<[string, Tensor]> {
    return this.namedParameters().filter(([, t]) => t.requiresGrad);
  }

  /** Switch dropout on (train) or off (eval) for the whole tree. */
  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Free every parameter's native memory. */
  dispose(): void {
    const seen = new Set<Tensor>();
    for (const [, t] of this.namedParameters()) {
      if (!seen.has(t) && !t.disposed) t.dispose();
      seen.add(t);
    }
  }
}

function* walk(
  m: Module,
  path: string,
  parent: Module | undefined,
  name: string,
): Generator<[string, Module, Module | undefined, string]> {
  yield [path, m, parent, name];
  for (const [n, c] of m.namedChildren()) yield* walk(c, path ? `${path}.${n}` : n, m, n);
}

/** An indexed list of modules ("layers.0", "layers.1", ...). */
export class ModuleList<M extends Module = Module> extends Module {
  constructor(items: M[]) {
    super();
    items.forEach((m, i) => this.module(String(i), m));
  }
  get length(): number {
    return this.namedChildren().length;
  }
  at(i: number): M {
    const m = this.child(String(i));
    if (!m) throw new MedloraError(`ModuleList: index ${i} out of range (length ${this.length})`);
    return m as M;
  }
  *[Symbol.iterator](): Iterator<M> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }
}

/** What LoRA and quantization wrap: a module mapping [..., in] to [..., out] (Linear, GPT-2 Conv1D, NF4 linear). */
export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** true when the weight is stored [in, out] (GPT-2's Conv1D), PEFT's `fan_in_fan_out` */
  readonly fanInFanOut: boolean;
  forward(x: Tensor): Tensor;
}

export function isLinearLike(m: Module): m is LinearLike {
  const l = m as unknown as Partial<LinearLike>;
  return typeof l.forward === 'function' && typeof l.inFeatures === 'number' && typeof l.outFeatures === 'number';
}

// Key/value cache for incremental decoding: per layer, the keys and values of every position seen so far
// ([B, kv_heads, S, head_dim], before GQA repetition). The cache owns its tensors (outside every scope) and frees
// the old ones as it grows.
import { cat, keep, type Tensor } from '../tensor/index.js';
import type { KVCacheLike } from './causal-lm.js';

export class KVCache implements KVCacheLike {
  private readonly keys: (Tensor | undefined)[];
  private readonly values: (Tensor | undefined)[];
  private committed = 0;

  constructor(
    readonly numLayers: number,
    readonly batch: number,
  ) {
    this.keys = new Array<Tensor | undefined>(numLayers).fill(undefined);
    this.values = new Array<Tensor | undefined>(numLayers).fill(undefined);
  }

  /** positions cached (before the current forward call) */
  get length(): number {
    return this.committed;
  }

  /**
   * Append this call's k, v for `layer` and return the full k, v (cached prefix + new). The returned tensors are
   * owned by the cache: do not dispose them.
   */
  update(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const oldK = this.keys[layer];
    const oldV = this.values[layer];
    if (k.size(0) !== this.batch) throw new Error(`kv cache: batch ${k.size(0)} != cache batch ${this.batch}`);
    if ((oldK?.size(2) ?? 0) !== this.committed) throw new Error(`kv cache: layer ${layer} updated twice in one step`);
    const nk = keep(oldK ? cat([oldK, k], 2) : k.contiguous().clone());
    const nv = keep(oldV ? cat([oldV, v], 2) : v.contiguous().clone());
    oldK?.dispose();
    oldV?.dispose();
    this.keys[layer] = nk;
    this.values[layer] = nv;
    return { k: nk, v: nv };
  }

  /** Called by the model after all layers ran: the new positions count as cached. */
  advance(n: number): void {
    this.committed += n;
  }

  /** Free every cached tensor; the cache is empty again. */
  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t?.dispose();
    this.keys.fill(undefined);
    this.values.fill(undefined);
    this.committed = 0;
  }
}

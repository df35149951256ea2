// Next-token choice from one row of logits, with Hugging Face's processor semantics and order: repetition penalty,
// allowed-token mask (constraints), then temperature, top-k, top-p; greedy = argmax after the processors. Sampling
// uses a seeded project PRNG (below) so a seed gives the same tokens on any device and is independent of the
// engine's global RNG.

export interface SamplingOptions {
  /** 0 or absent = greedy */
  temperature?: number;
  /** keep the k most likely tokens (0/absent = off) */
  topK?: number;
  /** keep the smallest set of most likely tokens whose probability reaches p (1/absent = off) */
  topP?: number;
  /** > 1 discourages tokens already in the sequence (prompt included); 1/absent = off */
  repetitionPenalty?: number;
}

/** splitmix32-style PRNG: uniform floats in [0, 1) from a 32-bit seed (deterministic, tiny, good enough to sample). */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    z = (z ^ (z >>> 16)) >>> 0;
    return z / 4294967296;
  }
}

/** HF RepetitionPenaltyLogitsProcessor: for each distinct id seen, divide a positive logit, multiply a negative one. */
export function applyRepetitionPenalty(row: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  const done = new Set<number>();
  for (const id of seen) {
    if (done.has(id) || id < 0 || id >= row.length) continue;
    done.add(id);
    const v = row[id]!;
    row[id] = v < 0 ? v * penalty : v / penalty;
  }
}

/** Set every id not allowed to -Infinity. allowed covers ids [0, allowed.length); ids past it are disallowed. */
export function applyAllowedMask(row: Float32Array, allowed: Uint8Array, extraAllowed: readonly number[] = []): void {
  const keep = new Set(extraAllowed);
  for (let i = 0; i < row.length; i++) if (!(i < allowed.length && allowed[i]) && !keep.has(i)) row[i] = -Infinity;
}

export function argmax(row: Float32Array): number {
  let best = -1,
    bv = -Infinity;
  for (let i = 0; i < row.length; i++)
    if (row[i]! > bv) {
      bv = row[i]!;
      best = i;
    }
  if (best < 0) throw new Error('sampling: every token is masked out (no finite logit)');
  return best;
}

/**
 * Choose a token. Greedy when temperature is 0/absent (top-k / top-p do not change an argmax). Otherwise
 * temperature, then top-k (HF TopKLogitsWarper: keep values >= the k-th largest), then top-p (HF TopPLogitsWarper:
 * drop the least likely tokens whose cumulative probability is <= 1 - p, always keeping the most likely), then an
 * inverse-CDF draw with the PRNG.
 */
export function chooseToken(row: Float32Array, o: SamplingOptions, rng: Prng | undefined): number {
  const t = o.temperature ?? 0;
  if (!(t > 0)) return argmax(row);
  if (!rng) throw new Error('sampling: a PRNG is needed when temperature > 0');
  const n = row.length;
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) z[i] = row[i]! / t;
  const order = Array.from({ length: n }, (_, i) => i)
    .filter((i) => z[i]! > -Infinity)
    .sort((a, b) => z[b]! - z[a]!);
  if (order.length === 0) throw new Error('sampling: every token is masked out (no finite logit)');
  let kept = order;
  const k = o.topK ?? 0;
  if (k > 0 && k < kept.length) {
    const kth = z[kept[k - 1]!]!;
    kept = kept.filter((i) => z[i]! >= kth); // ties with the k-th value stay, as in HF
  }
  // softmax over the kept tokens (max-subtracted)
  const m = z[kept[0]!]!;
  let sum = 0;
  const p = kept.map((i) => {
    const e = Math.exp(z[i]! - m);
    sum += e;
    return e;
  });
  for (let j = 0; j < p.length; j++) p[j] = p[j]! / sum;
  const topP = o.topP ?? 1;
  if (topP < 1) {
    // HF sorts ascending and removes tokens while the cumulative mass is <= 1 - top_p; from the top that is: keep
    // tokens until the mass above them reaches top_p
    let cumFromBottom = 0;
    let cut = p.length; // number kept from the top
    for (let j = p.length - 1; j > 0; j--) {
      cumFromBottom += p[j]!;
      if (cumFromBottom <= 1 - topP) cut = j;
      else break;
    }
    if (cut < p.length) {
      kept = kept.slice(0, cut);
      const s2 = p.slice(0, cut).reduce((a, b) => a + b, 0);
      p.length = cut;
      for (let j = 0; j < p.length; j++) p[j] = p[j]! / s2;
    }
  }
  const u = rng.next();
  let acc = 0;
  for (let j = 0; j < p.length; j++) {
    acc += p[j]!;
    if (u < acc) return kept[j]!;
  }
  return kept[kept.length - 1]!;
}

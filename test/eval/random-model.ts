// Test/bench helper: a tiny random "model" (seeded random scores over the vocabulary each step, ignoring context) and
// greedy / sampled decoding with or without a token constraint. A random model is the hardest case for a constraint:
// it is as likely to pick any allowed token as any other, so every corner of the format gets exercised.
import { ConstrainedSession, type Constraint } from '../../src/generate/constraints/mask.js';
import { applyMask } from '../../src/generate/constraints/index.js';
import { mulberry32 } from '../../src/data/split.js';

/** the project's seeded PRNG (mulberry32, src/data/split.ts) */
export const rng = mulberry32;

/** Seed from a prompt string (FNV-1a). */
export function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export interface DecodeResult {
  ids: number[];
  /** ended with EOS (not by running out of tokens) */
  eos: boolean;
  /** total time spent computing masks, ms */
  maskMs: number;
  steps: number;
}

/**
 * Decode up to `maxNewTokens` tokens from random logits. With `constraint`, logits of disallowed tokens are -Infinity
 * and EOS is allowed only when the answer is complete. `sample`: draw from softmax(logits * 4) instead of argmax.
 */
export function randomDecode(opts: {
  vocabSize: number;
  eosId: number;
  maxNewTokens: number;
  seed: number;
  sample: boolean;
  constraint?: Constraint;
  /** mask time of every step is appended here (ms) */
  stepTimes?: number[];
}): DecodeResult {
  const r = rng(opts.seed);
  const logits = new Float32Array(opts.vocabSize);
  const session = opts.constraint ? new ConstrainedSession(opts.constraint, opts.maxNewTokens) : undefined;
  const ids: number[] = [];
  let maskMs = 0;
  for (let step = 0; step < opts.maxNewTokens; step++) {
    for (let i = 0; i < logits.length; i++) logits[i] = r();
    if (session) {
      const t0 = performance.now();
      const m = session.mask();
      const dt = performance.now() - t0;
      maskMs += dt;
      opts.stepTimes?.push(dt);
      applyMask(logits, m, opts.eosId);
    }
    const id = opts.sample ? sampleFrom(logits, r) : argmax(logits);
    if (id < 0) throw new Error(`step ${step}: no token allowed`);
    ids.push(id);
    if (session ? session.accept(id) : id === opts.eosId) return { ids, eos: true, maskMs, steps: step + 1 };
  }
  return { ids, eos: false, maskMs, steps: opts.maxNewTokens };
}

function argmax(x: Float32Array): number {
  let best = -1,
    bv = -Infinity;
  for (let i = 0; i < x.length; i++)
    if (x[i]! > bv) {
      bv = x[i]!;
      best = i;
    }
  return best;
}

let weights = new Float64Array(0);

function sampleFrom(x: Float32Array, r: () => number): number {
  let total = 0;
  if (weights.length < x.length) weights = new Float64Array(x.length);
  const w = weights;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    w[i] = v === -Infinity ? 0 : Math.exp(4 * v);
    total += w[i]!;
  }
  if (total === 0) return -1;
  let u = r() * total;
  for (let i = 0; i < x.length; i++) {
    u -= w[i]!;
    if (u <= 0 && w[i]! > 0) return i;
  }
  for (let i = x.length - 1; i >= 0; i--) if (w[i]! > 0) return i;
  return -1;
}

// Sampling processors against hand-computed values: repetition penalty, top-k, top-p (HF semantics), seeding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyAllowedMask, applyRepetitionPenalty, argmax, chooseToken, Prng } from '../../src/generate/sampling.js';

test('repetition penalty: positive logits divided, negative multiplied, each id once', () => {
  const row = Float32Array.from([2, -2, 1, 0.5]);
  applyRepetitionPenalty(row, [0, 1, 0, 0], 2);
  assert.deepEqual([...row], [1, -4, 1, 0.5]);
});

test('allowed mask: disallowed and out-of-range ids become -Infinity; extra ids stay', () => {
  const row = Float32Array.from([1, 2, 3, 4, 5]);
  applyAllowedMask(row, Uint8Array.from([1, 0, 1]), [4]);
  assert.deepEqual([...row], [1, -Infinity, 3, -Infinity, 5]);
});

test('greedy: argmax, unaffected by top-k / top-p', () => {
  const row = Float32Array.from([0.1, 3, 2.9, -1]);
  assert.equal(argmax(row), 1);
  assert.equal(chooseToken(row, { topK: 1, topP: 0.1 }, undefined), 1);
  assert.throws(() => argmax(Float32Array.from([-Infinity, -Infinity])), /every token is masked/);
});

function freq(row: number[], o: Parameters<typeof chooseToken>[1], n = 4000, seed = 1): number[] {
  const rng = new Prng(seed);
  const counts = new Array<number>(row.length).fill(0);
  for (let i = 0; i < n; i++) counts[chooseToken(Float32Array.from(row), o, rng)]!++;
  return counts.map((c) => c / n);
}

test('top-k 2 samples only the two most likely, in softmax proportion e^3 : e^2', () => {
  const f = freq([1, 3, 2, 0], { temperature: 1, topK: 2 });
  assert.equal(f[0], 0);
  assert.equal(f[3], 0);
  const p1 = Math.exp(3) / (Math.exp(3) + Math.exp(2)); // 0.7311
  assert.ok(Math.abs(f[1]! - p1) < 0.03, `p(1) = ${f[1]} vs ${p1}`);
});

test('top-p: HF removes tokens whose ascending cumulative mass is <= 1 - p', () => {
  const logits = [0.5, 0.3, 0.15, 0.05].map(Math.log);
  // ascending: 0.05, 0.15, 0.3, 0.5 -> cumulative 0.05, 0.20, 0.50, 1.0
  // p = 0.8: remove cum <= 0.2 -> ids 3 and 2 go; keep 0 and 1 in proportion 0.5 : 0.3
  const f = freq(logits, { temperature: 1, topP: 0.8 });
  assert.equal(f[2], 0);
  assert.equal(f[3], 0);
  assert.ok(Math.abs(f[0]! - 0.625) < 0.03, `p(0) = ${f[0]} vs 0.625`);
  // p = 0.85: remove cum <= 0.15 -> only id 3 goes
  const g = freq(logits, { temperature: 1, topP: 0.85 });
  assert.equal(g[3], 0);
  assert.ok(g[2]! > 0.1, `p(2) = ${g[2]}`);
  // the most likely token always survives, even with a tiny p
  assert.deepEqual(freq(logits, { temperature: 1, topP: 0.01 }, 50), [1, 0, 0, 0]);
});

test('temperature sharpens: T=0.25 on logits [1, 0] gives p(0) = 1/(1+e^-4)', () => {
  const f = freq([1, 0], { temperature: 0.25 });
  const want = 1 / (1 + Math.exp(-4)); // 0.982
  assert.ok(Math.abs(f[0]! - want) < 0.01, `p(0) = ${f[0]} vs ${want}`);
});

test('seeded PRNG: same seed same draws, different seed different draws, values in [0, 1)', () => {
  const a = new Prng(42),
    b = new Prng(42),
    c = new Prng(43);
  const xa = Array.from({ length: 20 }, () => a.next());
  const xb = Array.from({ length: 20 }, () => b.next());
  const xc = Array.from({ length: 20 }, () => c.next());
  assert.deepEqual(xa, xb);
  assert.notDeepEqual(xa, xc);
  assert.ok(xa.every((x) => x >= 0 && x < 1));
  // roughly uniform: mean of many draws near 1/2
  const d = new Prng(7);
  let s = 0;
  for (let i = 0; i < 10000; i++) s += d.next();
  assert.ok(Math.abs(s / 10000 - 0.5) < 0.01);
});

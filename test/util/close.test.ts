// Proves the tolerance helper can fail: wrong values, NaN, and length mismatches are rejected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose, compareClose } from '../../src/util/close.js';

test('compareClose accepts values within atol and reports the max difference', () => {
  const r = compareClose([1, 2, 3.00005], [1, 2, 3], { atol: 1e-4, label: 'x' });
  assert.equal(r.ok, true);
  assert.ok(Math.abs(r.maxAbsDiff - 5e-5) < 1e-9);
  assert.equal(r.worstIndex, 2);
});

test('compareClose fails on a difference beyond tolerance', () => {
  assert.throws(() => assertClose([1, 2, 3.001], [1, 2, 3], { atol: 1e-4 }), /FAIL/);
});

test('relative-to-max-abs tolerance scales with the reference', () => {
  assert.equal(compareClose([100.5], [100], { rtolMaxAbs: 1e-2 }).ok, true);
  assert.equal(compareClose([100.5], [100], { rtolMaxAbs: 1e-3 }).ok, false);
});

test('NaN never passes and lengths must match', () => {
  assert.equal(compareClose([NaN], [1], { atol: 1e9 }).ok, false);
  assert.equal(compareClose([1, 2], [1], { atol: 1 }).ok, false);
});

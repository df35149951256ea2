// Schedules against values computed by hand from the HF formulas (transformers/optimization.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose } from '../../src/util/close.js';
import { learningRateAt, warmupSteps } from '../../src/train/schedule.js';

test('linear with warmup 2 over 12 steps: 0, lr/2, lr, then lr*(12-s)/10', () => {
  const spec = { type: 'linear' as const, learningRate: 5e-3, warmupSteps: 2, totalSteps: 12 };
  const got = Array.from({ length: 12 }, (_, s) => learningRateAt(spec, s));
  // by hand: s<2 -> 5e-3*s/2; s>=2 -> 5e-3*(12-s)/10
  const want = [0, 2.5e-3, 5e-3, 4.5e-3, 4e-3, 3.5e-3, 3e-3, 2.5e-3, 2e-3, 1.5e-3, 1e-3, 0.5e-3];
  assertClose(got, want, { atol: 1e-15, label: 'linear lr' });
});

test('cosine with warmup: half-cosine to 0 after warmup', () => {
  const spec = { type: 'cosine' as const, learningRate: 1, warmupSteps: 2, totalSteps: 10 };
  // progress p = (s-2)/8; lambda = 0.5*(1+cos(pi*p)); s=6 -> p=0.5 -> 0.5; s=4 -> p=0.25 -> 0.5*(1+sqrt(2)/2)
  assertClose(
    [
      learningRateAt(spec, 0),
      learningRateAt(spec, 1),
      learningRateAt(spec, 2),
      learningRateAt(spec, 4),
      learningRateAt(spec, 6),
      learningRateAt(spec, 10),
    ],
    [0, 0.5, 1, 0.5 * (1 + Math.SQRT1_2), 0.5, 0],
    { atol: 1e-12, label: 'cosine lr' },
  );
});

test('constant ignores warmup; constant_with_warmup ramps then holds', () => {
  assert.equal(learningRateAt({ type: 'constant', learningRate: 3, warmupSteps: 5, totalSteps: 10 }, 0), 3);
  const cw = { type: 'constant_with_warmup' as const, learningRate: 4, warmupSteps: 4, totalSteps: 10 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 9].map((s) => learningRateAt(cw, s)),
    [0, 1, 2, 3, 4, 4],
  );
});

test('warmup_ratio rounds up as HF get_warmup_steps: ceil(total * ratio); warmup_steps wins when > 0', () => {
  assert.equal(warmupSteps(0, 0.03, 1000), 30);
  assert.equal(warmupSteps(0, 0.03, 101), 4); // 3.03 -> 4
  assert.equal(warmupSteps(5, 0.5, 100), 5);
});

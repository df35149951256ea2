// causalLmLoss on hand-written logits: the shift (position t predicts label t+1), -100 positions, the last position
// of each row never counting, bf16 logits, the gradient landing on the right positions, and the shape errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { assertClose } from '../../src/util/close.js';
import { MedloraError } from '../../src/util/errors.js';
import { causalLmLoss } from '../../src/model/loss.js';

// logits rows chosen so that softmax is (1/4, 3/4) or (3/4, 1/4): [0, ln 3] -> p = (1/4, 3/4)
const L3 = Math.log(3);

test('position t predicts label t+1; -100 and the last position do not count (hand-computed)', () => {
  // B=1, T=3, V=2; labels [-100, 1, 0]: position 0 must predict 1 (p 3/4), position 1 must predict 0 (p 3/4);
  // position 2 has no next label. sum = 2 ln(4/3), 2 tokens, mean ln(4/3) = 0.28768...
  const logits = T.tensor([
    [
      [0, L3],
      [L3, 0],
      [5, -5],
    ],
  ]);
  const labels = T.tensor([[-100, 1, 0]], { dtype: 'i64' });
  const r = causalLmLoss(logits, labels);
  assert.equal(r.tokens, 2);
  assertClose([r.sumLoss.item(), r.loss.item()], [2 * Math.log(4 / 3), Math.log(4 / 3)], {
    atol: 1e-6,
    label: 'sum, mean',
  });
  // an unshifted loss would pair position 1 with label 1 (p 1/4) instead: make sure that is not what we computed
  assert.ok(Math.abs(r.loss.item() - (Math.log(4 / 3) + Math.log(4)) / 2) > 0.1);
});

test('two rows, a masked label inside a row, bf16 logits', () => {
  // row 0: labels [7, -100, 1] -> only position 1 -> label 1 counts: logits [L3, 0] -> p(1) = 1/4 -> ln 4
  // row 1: labels [0, 0, 1] -> position 0 -> 0 ([0, L3]: p 1/4 -> ln 4), position 1 -> 1 ([0, L3]: p 3/4 -> ln 4/3)
  const logits = T.tensor([
    [
      [0, 0],
      [L3, 0],
      [1, 2],
    ],
    [
      [0, L3],
      [0, L3],
      [3, 3],
    ],
  ]);
  const labels = T.tensor(
    [
      [7, -100, 1],
      [0, 0, 1],
    ],
    { dtype: 'i64' },
  );
  const want = 2 * Math.log(4) + Math.log(4 / 3);
  const f32 = causalLmLoss(logits, labels);
  assert.equal(f32.tokens, 3);
  assertClose([f32.sumLoss.item()], [want], { atol: 1e-5, label: 'f32 sum' });
  // bf16 holds ln 3 to ~3 significant digits: 8 mantissa bits, so allow 1e-2
  const bf = causalLmLoss(logits.to('bf16'), labels);
  assertClose([bf.sumLoss.item()], [want], { atol: 1e-2, label: 'bf16 sum' });
  assert.equal(bf.sumLoss.dtype, 'f32');
});

test('the gradient reaches only the positions that predict a counted label', () => {
  const logits = T.tensor([
    [
      [0, L3],
      [L3, 0],
      [5, -5],
    ],
  ]).requiresGrad_(true);
  const labels = T.tensor([[-100, 1, -100]], { dtype: 'i64' });
  const r = causalLmLoss(logits, labels);
  r.loss.backward();
  // d(-log softmax_1)/dz = softmax - onehot(1) at position 0: (1/4, 3/4) - (0, 1) = (1/4, -1/4); zero elsewhere
  assertClose(Array.from(logits.grad!.toFloat32Array()), [0.25, -0.25, 0, 0, 0, 0], { atol: 1e-6, label: 'grad' });
});

test('no counted token gives 0, not NaN; shape errors name the shapes', () => {
  const r = causalLmLoss(T.zeros([1, 2, 3]), T.tensor([[-100, -100]], { dtype: 'i64' }));
  assert.equal(r.tokens, 0);
  assert.equal(r.loss.item(), 0);
  assert.throws(
    () => causalLmLoss(T.zeros([2, 3]), T.zeros([2, 3], { dtype: 'i64' })),
    (e: unknown) => e instanceof MedloraError && /\[batch, seq, vocab\]/.test(e.message),
  );
  assert.throws(
    () => causalLmLoss(T.zeros([1, 2, 3]), T.zeros([1, 3], { dtype: 'i64' })),
    (e: unknown) => e instanceof MedloraError && /labels must be \[1, 2\]/.test(e.message),
  );
});

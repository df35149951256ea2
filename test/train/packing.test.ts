// Padding-free packing (training.padding_free, src/train/data.ts packBatch + the block-diagonal mask of
// src/model/layers.ts packedAttnMask) against the plain computation on every reference checkpoint: the same micro-batch
// right-padded to its longest row (the trainer's default route) and packed into one row must give the same summed loss,
// the same scored tokens and the same gradient for every parameter (full fine-tuning, so every weight's gradient is
// compared). A wrong mask (plain causal over the packed row, examples seeing each other) must fail the same check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enableFullFinetuning } from '../../src/adapt/apply.js';
import { loadModel } from '../../src/model/load.js';
import { scope, tensor } from '../../src/tensor/index.js';
import { summedTokenLoss } from '../../src/train/loss.js';
import { packBatch, padBatch, type Example, type MicroBatch } from '../../src/train/data.js';
import { assertClose, compareClose } from '../../src/util/close.js';
import { REFERENCE_FOLDERS, refBatch, refDir, skipNoShared } from '../model/fixtures.js';

test('packBatch: one row, positions restart per example, first label of each example ignored, same targets as padBatch', () => {
  const rows: Example[] = [{ input_ids: [1, 2, 3], labels: [-100, 2, 3] }, { input_ids: [4, 5], labels: [4, 5] }];
  const p = packBatch(rows);
  assert.deepEqual(p.input_ids, [[1, 2, 3, 4, 5]]);
  assert.deepEqual(p.position_ids, [[0, 1, 2, 0, 1]]);
  assert.deepEqual(p.segment_ids, [[0, 0, 0, 1, 1]]);
  // label 4 (the second example's first token) would be predicted across the boundary: ignored
  assert.deepEqual(p.labels, [[-100, 2, 3, -100, 5]]);
  const q = padBatch(rows, 0);
  assert.deepEqual(p.scored.targets, q.scored.targets);
  assert.equal(p.targets, q.targets);
});

function flat(g: Float32Array[]): Float32Array {
  const o = new Float32Array(g.reduce((n, x) => n + x.length, 0));
  let k = 0;
  for (const x of g) { o.set(x, k); k += x.length; }
  return o;
}

for (const name of REFERENCE_FOLDERS) {
  test(`${name}: packed micro-batch = padded micro-batch (summed loss, every gradient)`, { skip: skipNoShared }, () => {
    const m = loadModel(refDir(name));
    try {
      enableFullFinetuning(m);
      const params = m.namedParameters().filter(([, p]) => p.requiresGrad);
      const { raw } = refBatch(name);
      // three examples of different lengths, prompts masked
      const a = raw.input_ids[0]!.slice(0, 24), b = raw.input_ids[1]!.slice(0, 17), c = raw.input_ids[0]!.slice(5, 15);
      const rows: Example[] = [
        { input_ids: a, labels: [...new Array<number>(6).fill(-100), ...a.slice(6)] },
        { input_ids: b, labels: b },
        { input_ids: c, labels: [-100, -100, ...c.slice(2)] },
      ];
      // as the trainer's batchLoss
      const run = (mb: MicroBatch, segments: boolean): { sum: number; tokens: number; g: Float32Array } => {
        for (const [, p] of params) p.grad = null;
        let sum = 0;
        scope(() => {
          const extra = segments && mb.segment_ids ? { segmentIds: tensor(mb.segment_ids, { dtype: 'i64' }), positionIds: tensor(mb.position_ids!, { dtype: 'i64' }) }
            : mb.position_ids ? { positionIds: tensor(mb.position_ids, { dtype: 'i64' }) } : {};
          const logits = m.forward(tensor(mb.input_ids, { dtype: 'i64' }), { outputPositions: tensor(mb.scored.positions, { dtype: 'i64' }), ...extra,
            ...(mb.padded ? { attentionMask: tensor(mb.attention_mask, { dtype: 'i64' }) } : {}) });
          const s = summedTokenLoss(logits, tensor(mb.scored.targets, { dtype: 'i64' }));
          sum = s.item();
          s.backward();
        });
        return { sum, tokens: mb.targets, g: flat(params.map(([, p]) => p.grad!.toFloat32Array())) };
      };
      const plain = run(padBatch(rows, 0), false);
      const packed = run(packBatch(rows), true);
      const bf16 = name.includes('bf16');
      // bf16 (eps 2^-8): a different reduction order moves values by a few ulps of the largest gradient -> rtol 2^-6 of it
      const tol = bf16 ? { loss: 0.15, grad: 0, rtol: 2 ** -6 } : { loss: 1e-4, grad: 1e-5, rtol: 0 };
      assert.equal(packed.tokens, plain.tokens);
      console.log(`${name}: summed loss padded ${plain.sum.toFixed(6)} packed ${packed.sum.toFixed(6)} (diff ${Math.abs(plain.sum - packed.sum).toExponential(2)}) over ${plain.tokens} tokens; ` +
        `max gradient difference ${compareClose(packed.g, plain.g, { atol: tol.grad, rtolMaxAbs: tol.rtol }).maxAbsDiff.toExponential(2)} over ${plain.g.length} values`);
      assertClose([packed.sum], [plain.sum], { atol: tol.loss, label: `${name} summed loss` });
      assertClose(packed.g, plain.g, { atol: tol.grad, rtolMaxAbs: tol.rtol, label: `${name} gradients of all ${params.length} parameters` });
      // the checker can fail: the packed row under a plain causal mask (examples see each other) is not the same
      const leaky = run(packBatch(rows), false);
      console.log(`${name}: without the block-diagonal mask the loss differs by ${Math.abs(leaky.sum - plain.sum).toExponential(2)}`);
      assert.throws(() => assertClose([leaky.sum], [plain.sum], { atol: tol.loss, label: 'leaky' }));
    } finally {
      m.dispose();
    }
  });
}

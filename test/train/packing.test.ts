// Padding-free packing (training.padding_free, src/train/data.ts packBatch + the block-diagonal mask of
// src/model/layers.ts packedAttnMask) against the plain computation on every reference checkpoint: the same micro-batch
// right-padded to its longest row (the trainer's default route) and packed into one row must give the same summed loss,
// the same scored tokens and the same gradient for every parameter (full fine-tuning, so every weight's gradient is
// compared). A wrong mask (plain causal over the packed row, examples seeing each other) must fail the same check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { enableFullFinetuning } from '../../src/adapt/apply.js';
import { loadModel } from '../../src/model/load.js';
import { scope, tensor } from '../../src/tensor/index.js';
import { summedTokenLoss } from '../../src/train/loss.js';
import { packBatch, padBatch, type Example, type MicroBatch } from '../../src/train/data.js';
import { assertClose, compareClose } from '../../src/util/close.js';
import { REFERENCE_FOLDERS, refBatch, refDir, skipNoShared } from '../model/fixtures.js';
import { referenceRunFolder, trajectoryTolerances } from './reference-run.js';
import { cpuOnly, onDevice, trainDeviceArgs } from '../device.js';

test(
  'packBatch: one row, positions restart per example, first label of each example ignored, same targets as padBatch',
  { skip: cpuOnly },
  () => {
    const rows: Example[] = [
      { input_ids: [1, 2, 3], labels: [-100, 2, 3] },
      { input_ids: [4, 5], labels: [4, 5] },
    ];
    const p = packBatch(rows);
    assert.deepEqual(p.input_ids, [[1, 2, 3, 4, 5]]);
    assert.deepEqual(p.position_ids, [[0, 1, 2, 0, 1]]);
    assert.deepEqual(p.segment_ids, [[0, 0, 0, 1, 1]]);
    // label 4 (the second example's first token) would be predicted across the boundary: ignored
    assert.deepEqual(p.labels, [[-100, 2, 3, -100, 5]]);
    const q = padBatch(rows, 0);
    assert.deepEqual(p.scored.targets, q.scored.targets);
    assert.equal(p.targets, q.targets);
  },
);

function flat(g: Float32Array[]): Float32Array {
  const o = new Float32Array(g.reduce((n, x) => n + x.length, 0));
  let k = 0;
  for (const x of g) {
    o.set(x, k);
    k += x.length;
  }
  return o;
}

for (const name of REFERENCE_FOLDERS) {
  test(
    `${name}: packed micro-batch = padded micro-batch (summed loss, every gradient)`,
    { skip: skipNoShared || cpuOnly },
    () => {
      const m = loadModel(refDir(name));
      try {
        enableFullFinetuning(m);
        const params = m.namedParameters().filter(([, p]) => p.requiresGrad);
        const { raw } = refBatch(name);
        // three examples of different lengths, prompts masked
        const a = raw.input_ids[0]!.slice(0, 24),
          b = raw.input_ids[1]!.slice(0, 17),
          c = raw.input_ids[0]!.slice(5, 15);
        const rows: Example[] = [
          { input_ids: a, labels: [...new Array<number>(6).fill(-100), ...a.slice(6)] },
          { input_ids: b, labels: b },
          { input_ids: c, labels: [-100, -100, ...c.slice(2)] },
        ];
        // as the trainer's batchLoss
        // segments: 'mask' = segmentIds alone (the [T, T] block-diagonal mask), 'lengths' = with segmentLengths (per-segment
        // fused causal attention, what the trainer uses), 'none' = positions only (examples see each other)
        type Seg = 'mask' | 'lengths' | 'none';
        const run = (mb: MicroBatch, segments: Seg | false): { sum: number; tokens: number; g: Float32Array } => {
          for (const [, p] of params) p.grad = null;
          let sum = 0;
          scope(() => {
            const extra =
              (segments === 'mask' || segments === 'lengths') && mb.segment_ids
                ? {
                    segmentIds: tensor(mb.segment_ids, { dtype: 'i64' }),
                    positionIds: tensor(mb.position_ids!, { dtype: 'i64' }),
                    ...(segments === 'lengths' ? { segmentLengths: mb.segment_lengths! } : {}),
                  }
                : mb.position_ids
                  ? { positionIds: tensor(mb.position_ids, { dtype: 'i64' }) }
                  : {};
            const logits = m.forward(tensor(mb.input_ids, { dtype: 'i64' }), {
              outputPositions: tensor(mb.scored.positions, { dtype: 'i64' }),
              ...extra,
              ...(mb.padded ? { attentionMask: tensor(mb.attention_mask, { dtype: 'i64' }) } : {}),
            });
            const s = summedTokenLoss(logits, tensor(mb.scored.targets, { dtype: 'i64' }));
            sum = s.item();
            s.backward();
          });
          return { sum, tokens: mb.targets, g: flat(params.map(([, p]) => p.grad!.toFloat32Array())) };
        };
        const plain = run(padBatch(rows, 0), false);
        const bf16 = name.includes('bf16');
        // bf16 (eps 2^-8): a different reduction order moves values by a few ulps of the largest gradient -> rtol 2^-6 of it
        const tol = bf16 ? { loss: 0.15, grad: 0, rtol: 2 ** -6 } : { loss: 1e-4, grad: 1e-5, rtol: 0 };
        for (const how of ['mask', 'lengths'] as const) {
          const packed = run(packBatch(rows), how);
          assert.equal(packed.tokens, plain.tokens);
          console.log(
            `${name} (${how}): summed loss padded ${plain.sum.toFixed(6)} packed ${packed.sum.toFixed(6)} (diff ${Math.abs(plain.sum - packed.sum).toExponential(2)}) over ${plain.tokens} tokens; ` +
              `max gradient difference ${compareClose(packed.g, plain.g, { atol: tol.grad, rtolMaxAbs: tol.rtol }).maxAbsDiff.toExponential(2)} over ${plain.g.length} values`,
          );
          assertClose([packed.sum], [plain.sum], { atol: tol.loss, label: `${name} (${how}) summed loss` });
          assertClose(packed.g, plain.g, {
            atol: tol.grad,
            rtolMaxAbs: tol.rtol,
            label: `${name} (${how}) gradients of all ${params.length} parameters`,
          });
        }
        // the checker can fail: the packed row under a plain causal mask (examples see each other) is not the same
        const leaky = run(packBatch(rows), 'none');
        console.log(
          `${name}: without the block-diagonal mask the loss differs by ${Math.abs(leaky.sum - plain.sum).toExponential(2)}`,
        );
        assert.throws(() => assertClose([leaky.sum], [plain.sum], { atol: tol.loss, label: 'leaky' }));
        // wrong segment lengths (the first two examples taken as one) would attend across a boundary: refused, as lengths
        // that disagree with the segment ids
        const mb = packBatch(rows);
        assert.throws(
          () => run({ ...mb, segment_lengths: [a.length + b.length, c.length] }, 'lengths'),
          /segmentLengths \[41, 10\] are not the segments of segmentIds \(runs of \[24, 17, 10\]\)/,
        );
        // lengths that do not cover the row are refused
        assert.throws(
          () => run({ ...mb, segment_lengths: [a.length, b.length] }, 'lengths'),
          /segment lengths must be positive integers summing to the row's 51 tokens, got \[24, 17\]/,
        );
      } finally {
        m.dispose();
      }
    },
  );
}

// End to end: `medlora train` with training.padding_free on each reference fixture's 2-row batch (packed into one row
// per micro-batch) reproduces the fixture's 12-step HF/PEFT trajectory with test/train/reference.test.ts' tolerances.
const BIN = join(packageRoot(), 'bin', 'medlora.js');
for (const folder of REFERENCE_FOLDERS) {
  test(`${folder}: medlora train with padding_free reproduces expected.json (12 steps)`, { skip: skipNoShared }, () => {
    const { cfg, out, exp } = referenceRunFolder(folder, { padding_free: true, save_steps: null });
    const r = spawnSync(
      process.execPath,
      [BIN, 'train', '--config', cfg, '--threads', '1', '--quiet', ...trainDeviceArgs()],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const recs = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { loss?: number; grad_norm?: number })
      .filter((x) => x.loss !== undefined);
    const tol = trajectoryTolerances(folder);
    const rep = assertClose(
      recs.map((x) => x.loss!),
      exp.train_loss,
      { atol: tol.loss, label: onDevice(`${folder} train_loss (padding_free)`) },
    );
    const g = assertClose(
      recs.map((x) => x.grad_norm!),
      exp.grad_norm,
      { rtolMaxAbs: tol.gradNorm, label: onDevice(`${folder} grad_norm (padding_free)`) },
    );
    console.log(
      `${folder} padding_free: 12-step train_loss max diff ${rep.maxAbsDiff.toExponential(2)}, grad_norm max diff ${g.maxAbsDiff.toExponential(2)}`,
    );
  });
}

// The trainer's loss computes logits only at scored positions (src/train/loss.ts + ForwardOptions.outputPositions).
// Checked against the independent full-logits route (src/model/loss.ts: every position through lm_head, labels
// shifted) on the reference checkpoints: the same summed loss, the same token count and the same gradient for every
// parameter, on a right-padded batch with a masked prompt, as the trainer builds them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { enableFullFinetuning } from '../../src/adapt/apply.js';
import { loadModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/model/loss.js';
import { scope, tensor } from '../../src/tensor/index.js';
import { labelledPositions, summedTokenLoss } from '../../src/train/loss.js';
import { assertClose } from '../../src/util/close.js';
import { MedloraError } from '../../src/util/errors.js';
import { refBatch, refDir, skipNoShared } from '../model/fixtures.js';

test('labelledPositions: position t of row b is scored when labels[b][t+1] is not -100 (hand-written)', () => {
  const r = labelledPositions([
    [5, -100, 7, 8],
    [-100, -100, -100, 9],
    [-100, -100, -100, -100],
  ]);
  // row 0: t=1 -> 7, t=2 -> 8 (t=0 predicts -100); row 1 (offset 4): t=2 -> 9; row 2: nothing; the last column never predicts
  assert.deepEqual(r, { positions: [1, 2, 6], targets: [7, 8, 9] });
  assert.throws(
    () => labelledPositions([[1, 2], [1]]),
    (e: unknown) => e instanceof MedloraError && /row 1 has 1/.test(e.message),
  );
  assert.throws(
    () => summedTokenLoss(tensor([[0, 1]]), tensor([0, 1], { dtype: 'i64' })),
    /logits \[N, vocab\] and targets \[N\]/,
  );
});

for (const name of ['llama-tiny', 'llama3-tiny-tied', 'qwen2-tiny', 'gpt2-tiny']) {
  test(`${name}: loss and gradients from selected positions equal the full-logits loss`, { skip: skipNoShared }, () => {
    const m = loadModel(refDir(name));
    try {
      enableFullFinetuning(m);
      const params = m.namedParameters().filter(([, p]) => p.requiresGrad);
      const { raw } = refBatch(name);
      // row 0: a 6-token "prompt" masked out; row 1: shorter, right-padded with pad id 0 and label -100
      const a = raw.input_ids[0]!.slice(0, 24);
      const b = raw.input_ids[1]!.slice(0, 17);
      const pad = 24 - b.length;
      const ids = [a, [...b, ...new Array<number>(pad).fill(0)]];
      const labels = [
        [...new Array<number>(6).fill(-100), ...a.slice(6)],
        [...b, ...new Array<number>(pad).fill(-100)],
      ];
      const attn = [
        new Array<number>(24).fill(1),
        [...new Array<number>(b.length).fill(1), ...new Array<number>(pad).fill(0)],
      ];
      const grads = (
        f: () => { sum: number; tokens: number; backward: () => void },
      ): { sum: number; tokens: number; g: Float32Array[] } => {
        for (const [, p] of params) p.grad = null;
        let out = { sum: 0, tokens: 0 };
        scope(() => {
          const r = f();
          r.backward();
          out = { sum: r.sum, tokens: r.tokens };
        });
        return { ...out, g: params.map(([, p]) => p.grad!.toFloat32Array()) };
      };
      const full = grads(() => {
        const r = causalLmLoss(
          m.forward(tensor(ids, { dtype: 'i64' }), { attentionMask: tensor(attn, { dtype: 'i64' }) }),
          tensor(labels, { dtype: 'i64' }),
        );
        return { sum: r.sumLoss.item(), tokens: r.tokens, backward: () => r.sumLoss.backward() };
      });
      const sel = grads(() => {
        const { positions, targets } = labelledPositions(labels);
        const logits = m.forward(tensor(ids, { dtype: 'i64' }), {
          attentionMask: tensor(attn, { dtype: 'i64' }),
          outputPositions: tensor(positions, { dtype: 'i64' }),
        });
        assert.deepEqual(logits.shape, [positions.length, m.config.vocab_size]);
        const s = summedTokenLoss(logits, tensor(targets, { dtype: 'i64' }));
        return { sum: s.item(), tokens: targets.length, backward: () => s.backward() };
      });
      assert.equal(sel.tokens, full.tokens);
      assert.equal(sel.tokens, 18 + 16); // row 0: t = 5..22; row 1: t = 0..15
      console.log(
        `${name}: summed loss full ${full.sum.toFixed(6)} selected ${sel.sum.toFixed(6)} over ${sel.tokens} tokens`,
      );
      assertClose([sel.sum], [full.sum], { atol: 1e-4, label: `${name} summed loss` });
      // all parameter gradients as one vector (the report names the index of the largest difference)
      const flat = (g: Float32Array[]): Float32Array => {
        const o = new Float32Array(g.reduce((n, x) => n + x.length, 0));
        let k = 0;
        for (const x of g) {
          o.set(x, k);
          k += x.length;
        }
        return o;
      };
      assertClose(flat(sel.g), flat(full.g), {
        atol: 1e-5,
        label: `${name} gradients of all ${params.length} parameters`,
      });
    } finally {
      m.dispose();
    }
  });
}

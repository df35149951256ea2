// QLoRA on a real architecture (reference llama-tiny): quantizeModel's memory report counted by hand, the fixture
// adapter over NF4 base weights gives the same logits and LoRA gradients as the same adapter over a model whose weights
// are the dequantized values (so NF4 dequantization and the recompute-in-backward path are exact), and a few AdamW
// steps lower the loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/model/loss.js';
import { AdamW, noGrad, scope } from '../../src/tensor/index.js';
import { assertClose } from '../../src/util/close.js';
import { loraModules, resolve, trainableParameterSummary } from '../../src/adapt/apply.js';
import { loadAdapter } from '../../src/adapt/peft-io.js';
import { Nf4Linear, quantizeModel } from '../../src/adapt/nf4-linear.js';
import { refBatch, refDir, refTensor, skipNoShared } from '../model/fixtures.js';

test(
  'QLoRA on llama-tiny: memory report, logits and LoRA gradients equal the dequantized-weights model, training lowers the loss',
  { skip: skipNoShared },
  () => {
    const name = 'llama-tiny';
    const q = loadModel(refDir(name));
    const ref = loadModel(refDir(name));
    try {
      const totalBefore = trainableParameterSummary(q).total;
      const report = quantizeModel(q);
      assert.equal(report.layers.length, 14);
      assert.deepEqual(report.skipped, [{ path: 'lm_head', reason: 'skipped by option' }]);
      // config.json: per layer q 64x64, k 32x64, v 32x64, o 64x64, gate/up 176x64, down 64x176 = 46080 weights; 2 layers
      const weights = 2 * (4096 + 2048 + 2048 + 4096 + 3 * 11264);
      assert.equal(report.bytesBefore, weights * 4);
      // NF4: half a byte per weight + one F32 absmax per 64 weights (every matrix here is a multiple of 64)
      assert.equal(report.bytesAfter, weights / 2 + 4 * (weights / 64));
      console.log(
        `  llama-tiny NF4: ${report.bytesBefore} -> ${report.bytesAfter} bytes (${(report.bytesBefore / report.bytesAfter).toFixed(2)}x smaller)`,
      );
      assert.equal(trainableParameterSummary(q).total, totalBefore);
      // the reference model gets the dequantized weights
      noGrad(() => {
        for (const path of report.layers) {
          const nf4 = resolve(q, path) as Nf4Linear;
          resolve(ref, path)!.setParam('weight', nf4.dequantize('f32'));
        }
      });
      loadAdapter(q, join(refDir(name), 'adapter'));
      loadAdapter(ref, join(refDir(name), 'adapter'));
      const { ids, labels } = refBatch(name);
      const lossOf = (m: typeof q): number =>
        scope(() => {
          const { loss } = causalLmLoss(m.forward(ids), labels);
          loss.backward();
          return loss.item();
        });
      const lq = lossOf(q),
        lr = lossOf(ref);
      assertClose([lq], [lr], { atol: 1e-5, label: 'QLoRA loss vs dequantized-weights loss' });
      const refs = new Map(loraModules(ref));
      for (const [path, l] of loraModules(q)) {
        const r = refs.get(path)!;
        assertClose(l.lora_A.weight.grad!.toFloat32Array(), r.lora_A.weight.grad!.toFloat32Array(), {
          rtolMaxAbs: 1e-4,
          label: `grad ${path}.lora_A`,
        });
        assertClose(l.lora_B.weight.grad!.toFloat32Array(), r.lora_B.weight.grad!.toFloat32Array(), {
          rtolMaxAbs: 1e-4,
          label: `grad ${path}.lora_B`,
        });
      }
      const logitsQ = noGrad(() => q.forward(ids).toFloat32Array());
      const exact = refTensor(name, 'logits_lora');
      const maxDiff = logitsQ.reduce((a, v, i) => Math.max(a, Math.abs(v - exact[i]!)), 0);
      console.log(`  NF4 vs full-precision LoRA logits: max |diff| ${maxDiff.toExponential(3)}`);
      assert.ok(maxDiff > 1e-4, 'the 4-bit base is not the full-precision one');
      // training: the LoRA factors learn over the frozen 4-bit base
      const params = q.trainableParameters().map(([, t]) => t);
      const opt = new AdamW(params, { weightDecay: 0 });
      const losses: number[] = [];
      for (let s = 0; s < 4; s++) {
        params.forEach((p) => p.zeroGrad());
        losses.push(lossOf(q));
        opt.step(5e-3);
      }
      assert.ok(losses[3]! < losses[0]!, `loss ${losses.map((x) => x.toFixed(4)).join(' -> ')}`);
      for (const [k, t] of q.namedParameters())
        if (!/lora_[AB]/.test(k)) assert.equal(t.grad, null, `${k} stays frozen`);
    } finally {
      q.dispose();
      ref.dispose();
    }
  },
);

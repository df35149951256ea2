// Logits and loss of every reference fixture (../shared/fixtures/reference, independent PyTorch implementation of the
// HF math, cross-checked against transformers) through loadModel + forward + causalLmLoss, on MEDLORA_TEST_DEVICE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/model/load.js';
import type { LlamaForCausalLM } from '../../src/model/llama.js';
import { causalLmLoss } from '../../src/model/loss.js';
import { noGrad, scope } from '../../src/tensor/index.js';
import { assertClose } from '../../src/util/close.js';
import { REFERENCE_FOLDERS, refBatch, refDir, refExpected, refTensor, skipNoShared, tolerances } from './fixtures.js';
import { cpuOnly, loadTestModel, onDevice } from '../device.js';

for (const name of REFERENCE_FOLDERS) {
  test(`reference ${name}: logits and loss`, { skip: skipNoShared }, () => {
    const model = loadTestModel(refDir(name));
    try {
      scope(() => {
        const { ids, labels } = refBatch(name);
        const logits = noGrad(() => model.forward(ids));
        const tol = tolerances(name);
        assert.deepEqual([...logits.shape], [...ids.shape, model.config.vocab_size]);
        assertClose(logits.toFloat32Array(), refTensor(name, 'logits'), {
          atol: tol.logits,
          label: onDevice(`${name} logits`),
        });
        const { loss, tokens } = causalLmLoss(logits, labels);
        assertClose([loss.item()], [refExpected(name).loss], { atol: tol.loss, label: onDevice(`${name} loss`) });
        // labels after the shift that are not -100, counted by hand from batch.json
        const raw = refBatch(name).raw;
        const want = raw.labels.reduce((a, row) => a + row.slice(1).filter((x) => x !== -100).length, 0);
        assert.equal(tokens, want);
      });
    } finally {
      model.dispose();
    }
  });
}

test('bf16 fixture computes in bf16, f32 override computes in f32', { skip: skipNoShared || cpuOnly }, () => {
  const m = loadModel(refDir('llama-tiny-bf16')) as unknown as LlamaForCausalLM;
  const m32 = loadModel(refDir('llama-tiny-bf16'), { dtype: 'f32' }) as unknown as LlamaForCausalLM;
  try {
    assert.equal(m.model.embed_tokens.weight.dtype, 'bf16');
    assert.equal(m32.model.embed_tokens.weight.dtype, 'f32');
    for (const [, t] of m.namedParameters()) assert.equal(t.requiresGrad, false);
  } finally {
    m.dispose();
    m32.dispose();
  }
});

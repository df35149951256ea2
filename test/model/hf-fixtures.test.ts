// StableLM (partial rotary, LayerNorm, q/k/v bias, sequential and parallel residual) and Mistral forward checks
// against logits computed by the real transformers classes (test/fixtures/make_stablelm.py wrote these folders).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/model/loss.js';
import { openCheckpoint } from '../../src/io/safetensors.js';
import { bytesToNumbers } from '../../src/io/dtype.js';
import { cat, noGrad, scope, tensor, zeros, type Tensor } from '../../src/tensor/index.js';
import { assertClose } from '../../src/util/close.js';
import { packageRoot } from '../../src/util/paths.js';
import { MedloraError } from '../../src/util/errors.js';

const dir = (name: string): string => join(packageRoot(), 'test', 'fixtures', name);

for (const name of ['stablelm-tiny', 'stablelm-tiny-parallel', 'mistral-tiny']) {
  test(`${name}: logits and loss equal transformers'`, () => {
    const m = loadModel(dir(name));
    try {
      scope(() =>
        noGrad(() => {
          const b = JSON.parse(readFileSync(join(dir(name), 'batch.json'), 'utf8')) as {
            input_ids: number[][];
            labels: number[][];
          };
          const exp = JSON.parse(readFileSync(join(dir(name), 'expected.json'), 'utf8')) as { loss: number };
          const src = openCheckpoint(join(dir(name), 'expected.safetensors'));
          const ids = tensor(b.input_ids, { dtype: 'i64' });
          const logits = m.forward(ids);
          assertClose(logits.toFloat32Array(), bytesToNumbers('F32', src.read('logits')), {
            atol: 1e-4,
            label: `${name} logits`,
          });
          const { loss } = causalLmLoss(logits, tensor(b.labels, { dtype: 'i64' }));
          assertClose([loss.item()], [exp.loss], { atol: 1e-4, label: `${name} loss` });
          // cached decoding equals the full forward (partial rotary positions continue across the cache)
          const cache = m.newCache(2);
          const parts: Tensor[] = [m.forward(ids.narrow(1, 0, 7), { cache })];
          for (let t = 7; t < ids.size(1); t++) parts.push(m.forward(ids.narrow(1, t, 1), { cache }));
          assertClose(cat(parts, 1).toFloat32Array(), logits.toFloat32Array(), {
            atol: 1e-5,
            label: `${name} cached vs full`,
          });
          // left padding: row 1 shifted right by 3 pads gives its own logits
          const padded = cat([zeros([1, 3], { dtype: 'i64' }), ids.narrow(0, 1, 1).narrow(1, 0, 17)], 1);
          const mask = tensor([[0, 0, 0, ...new Array<number>(17).fill(1)]], { dtype: 'i64' });
          const pl = m.forward(padded, { attentionMask: mask }).narrow(1, 3, 17);
          assertClose(pl.toFloat32Array(), logits.narrow(0, 1, 1).narrow(1, 0, 17).contiguous().toFloat32Array(), {
            atol: 1e-5,
            label: `${name} left-padded row`,
          });
        }),
      );
    } finally {
      m.dispose();
    }
  });
}

test('mistral: an input longer than sliding_window is refused, not computed differently', () => {
  const m = loadModel(dir('mistral-tiny'));
  try {
    assert.throws(
      () => noGrad(() => m.forward(zeros([1, 65], { dtype: 'i64' }))),
      (e: unknown) => e instanceof MedloraError && /65 positions exceed sliding_window 64/.test(e.message),
    );
  } finally {
    m.dispose();
  }
});

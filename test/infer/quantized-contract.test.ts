// A QLoRA run's choice of base travels with its adapter: the training contract records quantization.load_in_4bit
// (src/train/contract.ts); loading the adapter over the full-precision base says so in a warning, and loadIn4bit
// quantizes the base while loading (src/adapt/nf4-linear.ts loadModelNf4) as training held it: logits bit-equal to
// load + quantizeModel + adapter, and different from the full-precision base's (so the comparison can fail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad, scope, setNumThreads, tensor, type Tensor } from '../../src/tensor/index.js';
import { loadModel } from '../../src/model/load.js';
import { quantizeModel } from '../../src/adapt/nf4-linear.js';
import { loadAnyAdapter } from '../../src/adapt/methods/index.js';
import { resolveConfig } from '../../src/train/config.js';
import { trainingContract } from '../../src/train/contract.js';
import { readContract, writeContract } from '../../src/data/contract.js';
import { loadExtractor } from '../../src/infer/load-extractor.js';
import { tinyAdapter, tinyFixture } from '../evalcli/tiny.js';

setNumThreads(1);

test('a QLoRA adapter: the contract records load_in_4bit; full-precision loading warns; loadIn4bit computes as training did', async () => {
  const fx = tinyFixture();
  const dir = join(fx.root, 'qlora-contract', 'adapter');
  cpSync(tinyAdapter('qlora-contract-src', 7), dir, { recursive: true });
  const train = join(fx.root, 'qlora-contract', 'train.jsonl');
  writeFileSync(train, JSON.stringify({ input_ids: [1, 2, 3], labels: [1, 2, 3] }) + '\n');
  const cfg = resolveConfig({}, [
    ['model', fx.model],
    ['data.train', train],
    ['output_dir', join(fx.root, 'qlora-contract', 'run')],
    ['quantization.load_in_4bit', 'true'],
  ]);
  writeContract(dir, await trainingContract(cfg, { format: 'tokenized', computeDtype: 'f32' }));
  assert.deepEqual(readContract(dir)?.quantization, { load_in_4bit: true });

  const ids = tensor([[1, 5, 9, 13, 17, 21]], { dtype: 'i64' });
  const logits = (m: { forward(x: Tensor): Tensor }): Float32Array =>
    noGrad(() => scope(() => m.forward(ids).to('f32').toFloat32Array() as Float32Array));
  const maxDiff = (a: Float32Array, b: Float32Array): number =>
    a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

  const full = loadExtractor({ model: fx.model, adapter: dir });
  const q = loadExtractor({ model: fx.model, adapter: dir, loadIn4bit: true });
  const want = loadModel(fx.model);
  try {
    assert.ok(
      full.warnings.some((w) => /trained over an NF4-quantized base \(quantization\.load_in_4bit in /.test(w)),
      full.warnings.join('\n'),
    );
    assert.ok(!q.warnings.some((w) => /NF4/.test(w)), q.warnings.join('\n'));
    assert.ok(q.quantized && q.quantized.layers.length > 0, 'the base linears were quantized');
    assert.equal(full.quantized, undefined);
    quantizeModel(want, { skip: ['lm_head'] });
    loadAnyAdapter(want, dir);
    const dq = maxDiff(logits(q.model), logits(want));
    const dFull = maxDiff(logits(full.model), logits(want));
    console.log(
      `  loadIn4bit vs load+quantize+adapter: max |diff| ${dq}; full-precision base vs NF4: ${dFull.toExponential(2)}`,
    );
    assert.equal(dq, 0);
    assert.ok(dFull > 1e-4, `the NF4 base computes differently from the full-precision one (${dFull})`);
  } finally {
    full.model.dispose();
    q.model.dispose();
    want.dispose();
  }
});

// loadExtractor's `device` option (src/infer/load-extractor.ts): 'cpu' puts the base, its NF4 base and the adapter on
// the CPU and computes as loading without the option does on a CPU-only machine; a device this addon or machine cannot
// provide is a MedloraError about the field `device`, thrown before any file is read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cudaDeviceCount, engineInfo, noGrad, scope, setNumThreads, tensor } from '../../src/tensor/index.js';
import { loadModel } from '../../src/model/load.js';
import { loadAnyAdapter } from '../../src/adapt/methods/index.js';
import { loadExtractor } from '../../src/infer/load-extractor.js';
import type { CausalLM } from '../../src/model/causal-lm.js';
import { MedloraError } from '../../src/util/errors.js';
import { tinyFixture } from '../evalcli/tiny.js';

setNumThreads(1);

const logits = (m: CausalLM): Float32Array =>
  noGrad(() => scope(() => m.forward(tensor([[1, 5, 9, 13, 17, 21]], { dtype: 'i64' })).toFloat32Array()));
const maxDiff = (a: Float32Array, b: Float32Array): number =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

test("device 'cpu': model, NF4 base and adapter on the CPU; logits equal loadModel + loadAnyAdapter's", () => {
  const fx = tinyFixture();
  const want = loadModel(fx.model);
  loadAnyAdapter(want, fx.adapter);
  const plain = loadModel(fx.model);
  const cpu = loadExtractor({ model: fx.model, adapter: fx.adapter, device: 'cpu' });
  const q = loadExtractor({ model: fx.model, adapter: fx.adapter, device: 'cpu', loadIn4bit: true });
  try {
    for (const l of [cpu, q]) {
      assert.equal(l.device, 'cpu');
      assert.equal(l.deviceNote, undefined);
      assert.equal(l.model.device, 'cpu');
      const params = l.model.namedParameters();
      assert.ok(
        params.some(([n]) => n.includes('lora_A')),
        'the adapter is applied',
      );
      for (const [n, t] of params) assert.equal(t.device, 'cpu', n);
    }
    assert.ok(q.quantized && q.quantized.layers.length > 0, 'the base linears were quantized');
    const d = maxDiff(logits(cpu.model), logits(want));
    // the adapter moves the logits (so an adapter left off, or loaded elsewhere, would show)
    const dBase = maxDiff(logits(plain), logits(want));
    console.log(`# device cpu vs loadModel + adapter: max |diff| ${d}; without the adapter: ${dBase.toExponential(2)}`);
    assert.equal(d, 0);
    assert.ok(dBase > 1e-4, `the adapter changes the logits (${dBase})`);
  } finally {
    for (const m of [want, plain, cpu.model, q.model]) m.dispose();
  }
});

test('device: the default (auto) is the CPU on a CPU-only addon, with the same logits as cpu', (t) => {
  if (engineInfo().compiledWithCuda && cudaDeviceCount() > 0) {
    t.skip('this addon has CUDA and a device is visible: auto picks the GPU here');
    return;
  }
  const fx = tinyFixture();
  const auto = loadExtractor({ model: fx.model, adapter: fx.adapter });
  const cpu = loadExtractor({ model: fx.model, adapter: fx.adapter, device: 'cpu' });
  try {
    assert.equal(auto.device, 'cpu');
    assert.equal(maxDiff(logits(auto.model), logits(cpu.model)), 0);
  } finally {
    auto.model.dispose();
    cpu.model.dispose();
  }
});

test("device 'cuda' without a usable CUDA device, or a bad word: a MedloraError about the field device, before any file is read", (t) => {
  const info = engineInfo();
  const count = cudaDeviceCount();
  const fx = tinyFixture();
  // a folder with no config.json: the device is refused before the model folder is even looked at
  const nowhere = join(fx.root, 'no-such-model');
  const refused = (device: string, re: RegExp): void =>
    assert.throws(
      () => loadExtractor({ model: nowhere, adapter: fx.adapter, device: device as 'cuda' }),
      (e: unknown) => {
        assert.ok(e instanceof MedloraError, String(e));
        assert.equal(e.field, 'device');
        assert.match(e.message, re);
        return true;
      },
      device,
    );
  refused('gpu', /^load: device: expected auto, cpu, cuda or cuda:N, got "gpu"/);
  refused('cuda:x', /expected auto, cpu, cuda or cuda:N/);
  if (info.compiledWithCuda && count > 0) {
    t.skip(`this addon has CUDA and ${count} device(s) are visible: cuda is available here`);
    return;
  }
  for (const d of ['cuda', 'cuda:0', 'cuda:3'])
    refused(
      d,
      info.compiledWithCuda
        ? new RegExp(`^load: device ${d}: no CUDA GPU is visible`)
        : new RegExp(`^load: device ${d}: this medlora addon was built against a CPU-only libtorch`),
    );
});

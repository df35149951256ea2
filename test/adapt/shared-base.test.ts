// Many adapters over ONE base (src/model/share.ts, loadAdapterShared): each adapter of any method (LoRA, DoRA,
// Adapter-V2, the same LoRA twice) over the shared base gives exactly the ids and logits of that adapter loaded alone
// on its own copy of the base; the base keeps computing the plain base; the copies hold the base's storage (an
// in-place write to the base shows through them) and add no base-sized memory (RSS measured, printed in MB; one
// separate copy is measured too, to show the check can fail). Also over an NF4 (QLoRA) base.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed, noGrad, randn, scope, setNumThreads, tensor, type Tensor } from '../../src/tensor/index.js';
import { loadModel } from '../../src/model/load.js';
import { isSharedWeight, ownParameterBytes, shareWeights } from '../../src/model/share.js';
import type { Module } from '../../src/model/module.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { generate } from '../../src/generate/generate.js';
import { quantizeModel } from '../../src/adapt/nf4-linear.js';
import { loadAdapterShared, loadAnyAdapter, methodNamed } from '../../src/adapt/methods/index.js';
import { tinyAdapter, tinyFixture } from '../evalcli/tiny.js';
import { refBatch, refDir, skipNoShared } from '../model/fixtures.js';
import { makeFixture, sharedBaseMemory, type MemoryRow } from '../../bench/shared-base.js';

setNumThreads(1);
const fx = tinyFixture();
const tok = loadTokenizer(fx.model);
const tmp = mkdtempSync(join(tmpdir(), 'medlora-shared-base-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const PROMPTS = ['Abilify gave me nausea', 'Cisplatin and lithium caused renal damage.'];
const ids = tensor([tok.encode(PROMPTS[1]!)], { dtype: 'i64' });
const logits = (m: { forward(x: Tensor): Tensor }): Float32Array =>
  noGrad(() => scope(() => m.forward(ids).to('f32').toFloat32Array() as Float32Array));
const maxDiff = (a: Float32Array, b: Float32Array): number =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/** A saved adapter of `method` over `modelDir` with random (non-zero) trainable tensors. */
function randomAdapter(modelDir: string, method: 'lora' | 'dora' | 'adapter_v2', settings: unknown, seed: number) {
  const dir = join(tmp, `${method}-${seed}`);
  const m = loadModel(modelDir);
  try {
    methodNamed(method).apply(m, settings as never);
    manualSeed(seed);
    noGrad(() => {
      for (const [, p] of m.trainableParameters()) {
        const r = scope(() => randn(p.shape).mul(0.3).to(p.dtype));
        p.add_(r);
        r.dispose();
      }
    });
    methodNamed(method).save(m, dir, { base_model_name_or_path: modelDir });
  } finally {
    m.dispose();
  }
  return dir;
}
const LORA = { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj', 'down_proj'] };

test('adapters of every method over one shared base equal each adapter loaded alone (ids and logits); the base stays the base', () => {
  const base = loadModel(fx.model);
  const plain = logits(base);
  const adapters: Array<[string, string]> = [
    ['lora', fx.adapter],
    ['lora-chem', tinyAdapter('chem', 23)],
    ['dora', randomAdapter(fx.model, 'dora', LORA, 5)],
    [
      'adapter_v2',
      randomAdapter(
        fx.model,
        'adapter_v2',
        { adapter_prompt_length: 3, adapter_start_layer: 1, target_modules: 'all' },
        6,
      ),
    ],
    ['lora-again', fx.adapter],
  ];
  const shared: Array<{
    name: string;
    model: Module & { forward(x: Tensor): Tensor };
    want: Float32Array;
    text: string[];
  }> = [];
  try {
    for (const [name, dir] of adapters) {
      const { model } = loadAdapterShared(base, dir);
      const alone = loadModel(fx.model);
      try {
        loadAnyAdapter(alone, dir);
        const want = logits(alone);
        const got = logits(model);
        const d = maxDiff(got, want);
        console.log(
          `${name}: shared vs alone max |logit diff| = ${d}; vs the plain base ${maxDiff(got, plain).toFixed(3)}`,
        );
        assert.equal(d, 0, `${name}: shared-base logits equal the adapter loaded alone`);
        assert.ok(maxDiff(got, plain) > 1e-3, `${name}: the adapter changes the output (the check can fail)`);
        const a = generate(alone, tok, PROMPTS, { maxNewTokens: 10 });
        const g = generate(model, tok, PROMPTS, { maxNewTokens: 10 });
        assert.deepEqual(
          g.map((x) => x.ids),
          a.map((x) => x.ids),
          `${name}: greedy ids`,
        );
        shared.push({ name, model, want, text: g.map((x) => x.text) });
      } finally {
        alone.dispose();
      }
      // only the adapter's own tensors are new: every base weight the copy holds is a handle on the base's storage
      const own = ownParameterBytes(model);
      assert.ok(own < 0.5 * ownParameterBytes(base), `${name}: own bytes ${own}`);
    }
    // loading later adapters did not disturb earlier ones, and the base is still exactly the plain base
    for (const s of shared) assert.equal(maxDiff(logits(s.model), s.want), 0, `${s.name} after all were loaded`);
    assert.equal(maxDiff(logits(base), plain), 0, 'the base computes the plain base');
    const fresh = loadModel(fx.model);
    assert.equal(maxDiff(logits(fresh), plain), 0);
    fresh.dispose();
    assert.equal(
      base.namedParameters().filter(([, t]) => isSharedWeight(t)).length,
      0,
      'the base holds no handles of others',
    );
  } finally {
    for (const s of shared) s.model.dispose();
  }
  // disposing the copies frees only their handles
  assert.equal(maxDiff(logits(base), plain), 0, 'the base still works after its adapters are disposed');
  base.dispose();
});

test('a shared copy holds the base storage: an in-place write to a base weight shows through; setParam on the copy does not reach the base', () => {
  const base = loadModel(fx.model);
  const copy = shareWeights(base);
  try {
    const key = 'model.layers.0.self_attn.q_proj.weight';
    const pb = base.namedParameters().find(([k]) => k === key)![1];
    const pc = copy.namedParameters().find(([k]) => k === key)![1];
    assert.notEqual(pb, pc, 'separate handles');
    assert.ok(isSharedWeight(pc) && !isSharedWeight(pb));
    const before = pc.toFloat32Array() as Float32Array;
    noGrad(() => pb.mul_(2));
    const after2 = pc.toFloat32Array() as Float32Array;
    assert.equal(
      maxDiff(
        after2,
        before.map((v) => v * 2),
      ),
      0,
      'the copy sees the write: one storage',
    );
    // replacing the copy's parameter leaves the base's tensor alive and unchanged
    const attn = [...copy.namedModules()].find(([p]) => p === 'model.layers.0.self_attn')!;
    const q = attn[1].child('q_proj')!;
    q.setParam(
      'weight',
      scope(() => pc.mul(0)),
    );
    assert.equal(pb.disposed, false);
    assert.equal(maxDiff(pb.toFloat32Array() as Float32Array, after2), 0);
  } finally {
    copy.dispose();
    base.dispose();
  }
});

test('over an NF4 (QLoRA) base: the shared copy equals the adapter on its own quantized base', () => {
  const base = loadModel(fx.model);
  quantizeModel(base, { skip: ['lm_head'] });
  const plain = logits(base);
  const { model } = loadAdapterShared(base, fx.adapter);
  const alone = loadModel(fx.model);
  try {
    quantizeModel(alone, { skip: ['lm_head'] });
    loadAnyAdapter(alone, fx.adapter);
    const d = maxDiff(logits(model), logits(alone));
    console.log(`NF4 base: shared vs alone max |logit diff| = ${d}`);
    assert.equal(d, 0);
    assert.ok(ownParameterBytes(model) < 0.2 * ownParameterBytes(base));
    assert.equal(maxDiff(logits(base), plain), 0, 'the quantized base is unchanged');
  } finally {
    alone.dispose();
    model.dispose();
    base.dispose();
  }
});

test(
  'a tied-embedding base (llama3-tiny-tied) with its PEFT adapter: shared copy == the adapter loaded alone',
  { skip: skipNoShared },
  () => {
    const dir = refDir('llama3-tiny-tied');
    const { ids: batch } = refBatch('llama3-tiny-tied');
    const f = (m: { forward(x: Tensor): Tensor }): Float32Array =>
      noGrad(() => scope(() => m.forward(batch).to('f32').toFloat32Array() as Float32Array));
    const base = loadModel(dir);
    const plain = f(base);
    const { model } = loadAdapterShared(base, join(dir, 'adapter'));
    const alone = loadModel(dir);
    try {
      loadAnyAdapter(alone, join(dir, 'adapter'));
      const d = maxDiff(f(model), f(alone));
      console.log(`tied base: shared vs alone max |logit diff| = ${d}`);
      assert.equal(d, 0);
      assert.ok(maxDiff(f(model), plain) > 1e-6, 'the adapter changes the output');
      assert.equal(maxDiff(f(base), plain), 0, 'the base is unchanged');
    } finally {
      alone.dispose();
      model.dispose();
      base.dispose();
    }
  },
);

test('memory: RSS with 1 vs 3 adapters over one base grows by the adapters only (printed in MB); separate copies grow by the base', () => {
  // a random Llama of about 28 MB (f32), large enough for RSS to show a copy above the allocator's noise; every
  // count is measured in a fresh process (bench/shared-base.ts), so no memory freed before is reused
  const { model, adapters } = makeFixture(join(tmp, 'mid'), 3);
  const r = sharedBaseMemory(model, adapters, [1, 3]);
  for (const x of r.rows)
    console.log(
      `base weights ${r.base_weights_mb} MB; ${x.adapters} adapter(s): RSS +${x.shared_mb} MB over one shared base, +${x.separate_mb} MB with a base copy each`,
    );
  const [one, three] = r.rows as [MemoryRow, MemoryRow];
  assert.ok(three.shared_mb - one.shared_mb < 0.25 * r.base_weights_mb, 'two more adapters add far less than a base');
  assert.ok(
    three.separate_mb - one.separate_mb > 1.5 * r.base_weights_mb,
    'two more base copies show up in RSS (the check can fail)',
  );
});

// PEFT adapter save / load on live models: round trip, PEFT's exact key names and config fields, loading the
// reference fixtures' PEFT-format adapters onto a module tree of the right shapes, and the error paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../../src/tensor/index.js';
import { Module, ModuleList } from '../../src/model/module.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { bytesAsF32 } from '../../src/io/dtype.js';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { MedloraError } from '../../src/util/errors.js';
import { TinyLinear, TinyModel } from './tiny.js';
import { applyLora, loraModules } from '../../src/adapt/apply.js';
import { loadAdapter, saveAdapter } from '../../src/adapt/peft-io.js';

const f = (t: T.Tensor): number[] => Array.from(t.toFloat32Array());
const tmp = (): string => mkdtempSync(join(tmpdir(), 'medlora-adapt-'));

function trainedTiny(seed: number, targets: string[] | string = ['q_proj', 'c_fc', 'lm_head']): TinyModel {
  T.manualSeed(seed);
  const m = new TinyModel();
  applyLora(m, { r: 2, lora_alpha: 6, lora_dropout: 0.05, target_modules: targets, init: false });
  return m;
}

test("save -> load round trip reproduces the adapted model; keys and config are PEFT's", () => {
  const dir = tmp();
  try {
    const a = trainedTiny(11);
    const x = T.randn([2, a.d]);
    const want = f(a.forward(x));
    const cfg = saveAdapter(a, dir, { base_model_name_or_path: 'tiny' });
    assert.equal(cfg.r, 2);
    const st = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(st.names().slice(0, 2), [
      'base_model.model.lm_head.lora_A.weight',
      'base_model.model.lm_head.lora_B.weight',
    ]);
    assert.ok(st.has('base_model.model.model.layers.1.mlp.c_fc.lora_B.weight'));
    assert.equal(st.names().length, 2 * 5);
    const ia = st.info('base_model.model.model.layers.0.mlp.c_fc.lora_A.weight');
    assert.deepEqual([ia.dtype, ia.shape], ['F32', [2, 8]]);
    assert.deepEqual(st.info('base_model.model.model.layers.0.mlp.c_fc.lora_B.weight').shape, [16, 2]);
    const json = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(json.peft_type, 'LORA');
    assert.equal(json.lora_alpha, 6);
    assert.equal(json.lora_dropout, 0.05);
    assert.deepEqual(json.target_modules, ['c_fc', 'lm_head', 'q_proj']);
    assert.equal(json.fan_in_fan_out, true, 'the model has a Conv1D target');
    assert.equal(json.base_model_name_or_path, 'tiny');

    // a fresh base with the same weights: seed 11 gives the same base init; then load
    T.manualSeed(11);
    const b = new TinyModel();
    const loaded = loadAdapter(b, dir);
    assert.equal(loaded.modules.length, 5);
    assertEqualArrays(f(b.forward(x)), want);
    const la = loraModules(b)[0]![1];
    assert.ok(
      la.lora_A.weight.requiresGrad && la.lora_A.weight.dtype === 'f32',
      'loaded factors are trainable F32 leaves',
    );
    assert.equal(la.scaling, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function assertEqualArrays(a: number[], b: number[]): void {
  assert.equal(a.length, b.length);
  assert.deepEqual(a, b);
}

/** The module tree of a Qwen2-style config (only the shapes matter for loading). */
function qwenSkeleton(d: number, qOut: number, kvOut: number, layers: number): Module {
  class Attn extends Module {
    constructor() {
      super();
      this.module('q_proj', new TinyLinear(d, qOut));
      this.module('k_proj', new TinyLinear(d, kvOut));
      this.module('v_proj', new TinyLinear(d, kvOut));
    }
  }
  class Layer extends Module {
    constructor() {
      super();
      this.module('self_attn', new Attn());
    }
  }
  class Inner extends Module {
    constructor() {
      super();
      this.module('layers', new ModuleList(Array.from({ length: layers }, () => new Layer())));
    }
  }
  class Root extends Module {
    constructor() {
      super();
      this.module('model', new Inner());
    }
  }
  return new Root();
}

test("the reference fixtures' PEFT adapter loads onto a module tree of the right shapes, values exact", (t) => {
  if (!hasShared()) {
    t.skip('../shared not available');
    return;
  }
  const dir = sharedPath('fixtures', 'reference', 'qwen2-tiny', 'adapter');
  // qwen2-tiny: hidden 64, 4 heads x 16, 2 kv heads -> q_proj 64 -> 64, v_proj 64 -> 32 (config.json)
  const m = qwenSkeleton(64, 64, 32, 2);
  const { config, modules } = loadAdapter(m, dir);
  assert.deepEqual(modules, [
    'model.layers.0.self_attn.q_proj',
    'model.layers.0.self_attn.v_proj',
    'model.layers.1.self_attn.q_proj',
    'model.layers.1.self_attn.v_proj',
  ]);
  assert.equal(config.r, 4);
  const st = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  for (const [path, l] of loraModules(m)) {
    assert.deepEqual(f(l.lora_A.weight), Array.from(bytesAsF32(st.read(`base_model.model.${path}.lora_A.weight`))));
    assert.deepEqual(f(l.lora_B.weight), Array.from(bytesAsF32(st.read(`base_model.model.${path}.lora_B.weight`))));
    assert.equal(l.scaling, 8 / 4);
  }
});

test('load errors: wrong shapes name the key; adapter for another model; mismatched modules; the model is left unwrapped', (t) => {
  if (!hasShared()) {
    t.skip('../shared not available');
    return;
  }
  const dir = sharedPath('fixtures', 'reference', 'qwen2-tiny', 'adapter');
  const wrongShapes = qwenSkeleton(64, 64, 48, 2);
  assert.throws(
    () => loadAdapter(wrongShapes, dir),
    (e: Error) =>
      e instanceof MedloraError &&
      /base_model\.model\.model\.layers\.0\.self_attn\.v_proj': lora_B has shape \[32, 4\]; expected \[48, 4\]/.test(
        e.message,
      ),
  );
  assert.equal(loraModules(wrongShapes).length, 0, 'no half-applied adapter');
  const fewerLayers = qwenSkeleton(64, 64, 32, 1);
  assert.throws(
    () => loadAdapter(fewerLayers, dir),
    /weights for module\(s\) model\.layers\.1\.self_attn\.q_proj.*not targeted/,
  );
  assert.throws(
    () => loadAdapter(new TinyModel(), sharedPath('fixtures', 'reference', 'gpt2-tiny', 'adapter')),
    /target_modules \["c_attn"\] match no linear layer/,
  );
});

test('load errors without fixtures: targeted module missing from the file; not an adapter folder', () => {
  const dir = tmp();
  try {
    const a = trainedTiny(12, ['q_proj']);
    saveAdapter(a, dir);
    // claim more targets than the file holds
    const cfgPath = join(dir, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, target_modules: ['q_proj', 'v_proj'] }));
    assert.throws(
      () => loadAdapter(new TinyModel(), dir),
      /no weights for targeted module\(s\) model\.layers\.0\.self_attn\.v_proj/,
    );
    // a file of the right keys but a bf16 dtype loads (cast to F32)
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const st = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
    const bf: Record<string, { dtype: 'BF16'; shape: number[]; data: Uint8Array }> = {};
    for (const n of st.names()) {
      const i = st.info(n);
      bf[n] = { dtype: 'BF16', shape: i.shape, data: T.fromBytes(st.read(n), 'f32', i.shape).to('bf16').toBytes() };
    }
    writeSafetensors(join(dir, 'adapter_model.safetensors'), bf);
    const m = new TinyModel();
    loadAdapter(m, dir);
    assert.equal(loraModules(m)[0]![1].lora_A.weight.dtype, 'f32');
    assert.throws(() => loadAdapter(new TinyModel(), tmpdir()), /no adapter_config\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

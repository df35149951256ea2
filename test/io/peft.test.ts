// PEFT adapters: the reference adapters read and validate against their base checkpoints; config round trip keeps
// unknown fields; key helpers; write -> read bit-exact; malformed adapters are clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import {
  isTargetModule,
  loraKey,
  loraScale,
  makeLoraConfig,
  parseLoraConfig,
  parseLoraKey,
  readAdapter,
  writeAdapter,
  loraConfigToJson,
} from '../../src/io/peft.js';
import { openCheckpoint, readAll, type TensorData } from '../../src/io/safetensors.js';
import { typedBytes } from '../../src/io/dtype.js';

const skip = hasShared() ? false : 'no ../shared fixtures';
const ref = (...p: string[]): string => sharedPath('fixtures', 'reference', ...p);
const tmp = (): string => mkdtempSync(join(tmpdir(), 'medlora-peft-'));

test('reference adapters: every module has A [r, in] and B [out, r] matching the base weight', { skip }, () => {
  for (const f of readdirSync(ref()).filter((d) => !d.includes('.'))) {
    const a = readAdapter(ref(f, 'adapter'));
    const base = openCheckpoint(ref(f));
    assert.equal(a.config.r, 4);
    assert.equal(a.config.lora_alpha, 8);
    assert.equal(loraScale(a.config), 2);
    assert.ok(a.modules.size > 0);
    for (const [m, mod] of a.modules) {
      assert.ok(isTargetModule(a.config, m), `${f}: ${m} is targeted`);
      assert.equal(mod.A.dtype, 'F32'); // LoRA tensors stay F32 even for the bf16 base
      // the base Linear weight is [out, in]; GPT-2's Conv1D (fan_in_fan_out) stores [in, out]
      const wName = base.has(`${m}.weight`)
        ? `${m}.weight`
        : m === 'lm_head'
          ? 'model.embed_tokens.weight'
          : `${m}.weight`;
      const w = base.info(wName).shape;
      const [out, inn] = a.config.fan_in_fan_out ? [w[1], w[0]] : [w[0], w[1]];
      assert.deepEqual([mod.outFeatures, mod.inFeatures], [out, inn], `${f}: ${m}`);
    }
    assert.deepEqual(a.otherTensors, []);
    console.log(`  ${f}: ${a.modules.size} modules, fan_in_fan_out=${a.config.fan_in_fan_out}`);
  }
});

test('adapter_config round trip keeps unknown fields', () => {
  const raw = {
    peft_type: 'LORA',
    r: 16,
    lora_alpha: 32,
    lora_dropout: 0.05,
    target_modules: ['q_proj', 'v_proj'],
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: true,
    modules_to_save: null,
    base_model_name_or_path: 'x/y',
    task_type: 'CAUSAL_LM',
    layers_to_transform: null,
    init_lora_weights: true,
    revision: null,
    megatron_core: 'megatron.core',
  };
  const c = parseLoraConfig(raw);
  assert.deepEqual(c.extra, { init_lora_weights: true, revision: null, megatron_core: 'megatron.core' });
  assert.equal(c.layers_to_transform, null); // a typed field now (PEFT layer selection)
  assert.deepEqual(loraConfigToJson(c), raw);
  assert.equal(loraScale(c), 32 / 4); // rsLoRA: alpha / sqrt(16)
  // PEFT defaults for absent fields
  const d = parseLoraConfig({ peft_type: 'LORA', target_modules: 'model\\.layers\\.\\d+\\.self_attn\\.(q|v)_proj' });
  assert.equal(d.r, 8);
  assert.equal(d.lora_alpha, 8);
  assert.equal(d.bias, 'none');
  assert.equal(d.use_rslora, false);
  assert.equal(isTargetModule(d, 'model.layers.3.self_attn.q_proj'), true);
  assert.equal(isTargetModule(d, 'model.layers.3.self_attn.k_proj'), false);
  assert.equal(isTargetModule(d, 'x.model.layers.3.self_attn.q_proj'), false); // regex must match the whole path
});

test('key helpers', () => {
  assert.equal(
    loraKey('model.layers.0.self_attn.q_proj', 'A'),
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
  );
  assert.deepEqual(parseLoraKey('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight'), {
    module: 'model.layers.0.self_attn.q_proj',
    which: 'B',
  });
  assert.equal(parseLoraKey('base_model.model.lm_head.weight'), undefined);
  assert.equal(isTargetModule({ target_modules: ['q_proj'] }, 'model.layers.0.self_attn.q_proj'), true);
  assert.equal(isTargetModule({ target_modules: ['q_proj'] }, 'model.layers.0.self_attn.qq_proj'), false);
  assert.equal(isTargetModule({ target_modules: 'all-linear' }, 'lm_head'), false);
});

test('writeAdapter -> readAdapter is bit-exact', { skip }, () => {
  const d = tmp();
  try {
    const src = readAdapter(ref('llama-tiny', 'adapter'));
    const tensors = readAll(src.tensors);
    writeAdapter(join(d, 'out'), src.config, tensors);
    const back = readAdapter(join(d, 'out'));
    assert.deepEqual(back.config, src.config);
    assert.deepEqual([...back.modules.keys()], [...src.modules.keys()]);
    for (const n of src.tensors.names())
      assert.ok(Buffer.from(back.tensors.read(n)).equals(Buffer.from(tensors[n]!.data)), n);
    // every field of the original comes back unchanged; PEFT defaults absent there (use_rslora, modules_to_save) are
    // written out explicitly, as PEFT itself does
    const written = JSON.parse(readFileSync(join(d, 'out', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const orig = JSON.parse(readFileSync(ref('llama-tiny', 'adapter', 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    for (const [k, v] of Object.entries(orig)) assert.deepEqual(written[k], v, k);
    assert.deepEqual(
      Object.keys(written)
        .filter((k) => !(k in orig))
        .sort(),
      ['modules_to_save', 'use_rslora'],
    );
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('malformed adapters are clear errors', () => {
  const d = tmp();
  const f32 = (shape: number[]): TensorData => ({
    dtype: 'F32',
    shape,
    data: typedBytes(new Float32Array(shape.reduce((a, b) => a * b, 1))),
  });
  const cfg = makeLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj'] });
  const m = 'model.layers.0.self_attn.q_proj';
  try {
    assert.throws(
      () => writeAdapter(d, cfg, { [loraKey(m, 'A')]: f32([2, 8]) }),
      /module 'model\.layers\.0\.self_attn\.q_proj' has lora_A but no lora_B/,
    );
    assert.throws(
      () => writeAdapter(d, cfg, { [loraKey(m, 'A')]: f32([3, 8]), [loraKey(m, 'B')]: f32([8, 2]) }),
      /lora_A\.weight' has shape \[3,8\]; expected \[r=2, in_features\]/,
    );
    assert.throws(
      () => writeAdapter(d, cfg, { [loraKey(m, 'A')]: f32([2, 8]), [loraKey(m, 'B')]: f32([8, 3]) }),
      /expected \[out_features, r=2\]/,
    );
    assert.throws(
      () => writeAdapter(d, cfg, { 'base_model.model.x.lora_magnitude_vector': f32([2]) }),
      /DoRA adapters are not supported/,
    );
    assert.throws(() => writeAdapter(d, cfg, {}), /no LoRA tensors/);
    assert.throws(
      () => parseLoraConfig({ peft_type: 'IA3', target_modules: ['q'] }, 'a/adapter_config.json'),
      /a\/adapter_config\.json: peft_type "IA3" is not supported/,
    );
    assert.throws(
      () => parseLoraConfig({ peft_type: 'LORA', target_modules: [] }),
      /"target_modules" must be a non-empty list/,
    );
    assert.throws(
      () => parseLoraConfig({ peft_type: 'LORA', r: 0, target_modules: ['q'] }),
      /"r" must be a positive integer/,
    );
    assert.throws(() => parseLoraConfig({ peft_type: 'LORA', target_modules: '(' }), /regex "\(" does not compile/);
    assert.throws(() => parseLoraConfig({ peft_type: 'LORA', target_modules: ['q'], use_dora: true }), /DoRA/);
    assert.throws(
      () => parseLoraConfig({ peft_type: 'LORA', target_modules: ['q'], rank_pattern: { q: 4 } }),
      /rank_pattern/,
    );
    assert.throws(() => readAdapter(d), /no adapter_config\.json/);
    writeFileSync(join(d, 'adapter_config.json'), JSON.stringify(loraConfigToJson(cfg)));
    writeFileSync(join(d, 'adapter_model.bin'), 'x');
    assert.throws(() => readAdapter(d), /no adapter_model\.safetensors \(found adapter_model\.bin/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

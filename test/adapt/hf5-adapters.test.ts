// PEFT 0.21 adapters saved with defaults (test/fixtures/hf5, make_hf5.py): `medlora merge` equals PEFT's
// merge_and_unload state dict; the lm_head base copy PEFT stores must equal the model's head; layers_to_transform /
// exclude_modules select exactly PEFT's modules; bad adapter configs are one-line errors naming the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/model/loss.js';
import { loadAdapter } from '../../src/adapt/peft-io.js';
import { mergeCheckpoint } from '../../src/adapt/merge-checkpoint.js';
import { openCheckpoint, readAll, writeSafetensors } from '../../src/io/safetensors.js';
import { bytesToNumbers } from '../../src/io/dtype.js';
import { isTargetModule } from '../../src/io/peft.js';
import { noGrad, scope, tensor } from '../../src/tensor/index.js';
import { assertClose, compareClose } from '../../src/util/close.js';
import { MedloraError } from '../../src/util/errors.js';
import { packageRoot } from '../../src/util/paths.js';
import { HF5_ADAPTERS, hf5Batch, hf5Expected, hf5Model, hf5Path, hf5Tensor } from '../model/hf5.js';

const TOL = 1e-4;
const bin = join(packageRoot(), 'bin', 'medlora.js');

test('medlora merge equals PEFT merge_and_unload (every changed tensor) and the merged model computes loss_lora', () => {
  for (const [name, ad] of HF5_ADAPTERS) {
    const out = mkdtempSync(join(tmpdir(), `medlora-hf5-merge-`));
    try {
      if (name === 'gpt2-tiny') {
        // through the CLI: Conv1D attention + nn.Linear lm_head in one adapter
        const r = spawnSync(
          process.execPath,
          [bin, 'merge', '--model', hf5Model(name), '--adapter', hf5Path(name, ad), '--out', out],
          { encoding: 'utf8' },
        );
        assert.equal(r.status, 0, r.stderr);
      } else {
        mergeCheckpoint({ model: hf5Model(name), adapter: hf5Path(name, ad), out });
      }
      const exp = hf5Expected(name, ad);
      const got = openCheckpoint(out);
      const base = openCheckpoint(hf5Model(name));
      for (const key of exp.merged_keys) {
        const want = hf5Tensor(`merged.${key}`, name, ad);
        if (name === 'gpt2-tiny' && key === 'transformer.wte.weight') {
          // tied head: PEFT adds the lm_head update to the shared tensor, so its input embedding changes too (PEFT warns,
          // peft#2777); medlora writes a separate lm_head.weight and keeps wte, so the merged model computes the adapter
          const orig = bytesToNumbers('F32', base.read(key));
          assert.ok(!compareClose(orig, want, { atol: TOL }).ok, 'PEFT changed wte');
          assertClose(bytesToNumbers('F32', got.read(key)), orig, { atol: 0, label: `${name} wte kept` });
          continue;
        }
        const r = compareClose(bytesToNumbers(got.info(key).dtype, got.read(key)), want, {
          atol: 1e-5,
          label: `${name}/${ad} merged ${key}`,
        });
        console.log(`  ${name}/${ad} merged ${key}: max |diff| vs PEFT ${r.maxAbsDiff.toExponential(2)}`);
        assert.ok(r.ok, r.message);
      }
      // every other tensor unchanged
      for (const key of base.names()) {
        if (exp.merged_keys.includes(key)) continue;
        assert.deepEqual(got.read(key), base.read(key), `${key} unchanged`);
      }
      const m = loadModel(out);
      try {
        const loss = scope(() =>
          noGrad(() => {
            const b = hf5Batch(name);
            return causalLmLoss(
              m.forward(tensor(b.input_ids, { dtype: 'i64' })),
              tensor(b.labels, { dtype: 'i64' }),
            ).loss.item() as number;
          }),
        );
        console.log(
          `  ${name}/${ad}: merged loss ${loss.toFixed(6)}, transformers+PEFT unmerged ${exp.loss_lora.toFixed(6)}, PEFT merged ${exp.loss_merged.toFixed(6)}`,
        );
        assertClose([loss], [exp.loss_lora], { atol: TOL, label: `${name}/${ad} merged loss vs loss_lora` });
      } finally {
        m.dispose();
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
});

test('a square nn.Linear in a Conv1D model is merged untransposed (the layout comes from the module)', () => {
  // gpt2-tiny with its lm_head made square: vocab 64 = n_embd (wte rows cut), untied, a LoRA on lm_head and c_proj
  const d = mkdtempSync(join(tmpdir(), 'medlora-square-'));
  try {
    const w = readAll(openCheckpoint(hf5Model('gpt2-tiny')));
    const wte = w['transformer.wte.weight']!;
    w['transformer.wte.weight'] = { dtype: 'F32', shape: [64, 64], data: wte.data.slice(0, 64 * 64 * 4) };
    // an asymmetric head, so a transposed merge could not pass by accident
    const head = new Float32Array(64 * 64).map((_, i) => Math.sin(i * 0.37) * 0.1 + (i % 64 === 0 ? 0.3 : 0));
    w['lm_head.weight'] = { dtype: 'F32', shape: [64, 64], data: new Uint8Array(head.buffer) };
    mkdirSync(join(d, 'model'));
    writeSafetensors(join(d, 'model', 'model.safetensors'), w);
    const cfg = JSON.parse(readFileSync(join(hf5Model('gpt2-tiny'), 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(
      join(d, 'model', 'config.json'),
      JSON.stringify({ ...cfg, vocab_size: 64, tie_word_embeddings: false }),
    );
    mkdirSync(join(d, 'adapter'));
    const A = new Float32Array(4 * 64).map((_, i) => Math.cos(i * 0.11)),
      B = new Float32Array(64 * 4).map((_, i) => Math.sin(i * 0.23));
    const f32 = (a: Float32Array, shape: number[]) => ({
      dtype: 'F32' as const,
      shape,
      data: new Uint8Array(a.buffer.slice(0)),
    });
    writeSafetensors(join(d, 'adapter', 'adapter_model.safetensors'), {
      'base_model.model.lm_head.lora_A.weight': f32(A, [4, 64]),
      'base_model.model.lm_head.lora_B.weight': f32(B, [64, 4]),
      'base_model.model.transformer.h.0.attn.c_proj.lora_A.weight': f32(A, [4, 64]),
      'base_model.model.transformer.h.0.attn.c_proj.lora_B.weight': f32(B, [64, 4]),
    });
    // fan_in_fan_out true, as for GPT-2's Conv1D: it must not decide lm_head's layout
    writeFileSync(
      join(d, 'adapter', 'adapter_config.json'),
      JSON.stringify({
        peft_type: 'LORA',
        r: 4,
        lora_alpha: 8,
        target_modules: ['lm_head', 'c_proj'],
        fan_in_fan_out: true,
      }),
    );
    mergeCheckpoint({ model: join(d, 'model'), adapter: join(d, 'adapter'), out: join(d, 'out') });
    const merged = bytesToNumbers('F32', openCheckpoint(join(d, 'out')).read('lm_head.weight'));
    const cproj = bytesToNumbers('F32', openCheckpoint(join(d, 'out')).read('transformer.h.0.attn.c_proj.weight'));
    const cproj0 = bytesToNumbers('F32', openCheckpoint(join(d, 'model')).read('transformer.h.0.attn.c_proj.weight'));
    // expected by hand: lm_head [out, in] += B A * 2; c_proj [in, out] += (B A * 2)^T
    const want = new Float64Array(64 * 64),
      wantC = new Float64Array(64 * 64);
    for (let o = 0; o < 64; o++)
      for (let i = 0; i < 64; i++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s += B[o * 4 + k]! * A[k * 64 + i]!;
        want[o * 64 + i] = head[o * 64 + i]! + 2 * s;
        wantC[i * 64 + o] = cproj0[i * 64 + o]! + 2 * s;
      }
    assertClose(merged, want, { atol: 1e-5, label: 'square lm_head merged as [out, in]' });
    assertClose(cproj, wantC, { atol: 1e-5, label: 'square Conv1D c_proj merged as [in, out]' });
    const transposed = new Float64Array(64 * 64);
    for (let o = 0; o < 64; o++)
      for (let i = 0; i < 64; i++) transposed[o * 64 + i] = head[o * 64 + i]! + (want[i * 64 + o]! - head[i * 64 + o]!);
    assert.ok(!compareClose(merged, transposed, { atol: 1e-3 }).ok, 'the check tells the transposed merge apart');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('PEFT lm_head base copy: used when equal to the model head, an error naming the tensor when it differs', () => {
  const d = mkdtempSync(join(tmpdir(), 'medlora-basecopy-'));
  try {
    const src = hf5Path('llama-tiny', 'adapter-lm-head');
    copyFileSync(join(src, 'adapter_config.json'), join(d, 'adapter_config.json'));
    const t = readAll(openCheckpoint(join(src, 'adapter_model.safetensors')));
    const k = 'base_model.model.lm_head.base_layer.weight';
    const v = new Float32Array(t[k]!.data.slice().buffer);
    v[5] = v[5]! + 0.01;
    t[k] = { ...t[k]!, data: new Uint8Array(v.buffer) };
    writeSafetensors(join(d, 'adapter_model.safetensors'), t);
    const m = loadModel(hf5Model('llama-tiny'));
    try {
      assert.throws(
        () => loadAdapter(m, d),
        (e: unknown) =>
          e instanceof MedloraError &&
          /adapter_model\.safetensors: 'base_model\.model\.lm_head\.base_layer\.weight' \(the base weight PEFT saved beside the LoRA factors\) differs from the model's 'lm_head\.base_layer\.weight' by up to 1\.00\de-2/.test(
            e.message,
          ),
      );
      // the model is left without adapters and loads the untouched adapter afterwards
      loadAdapter(m, src);
    } finally {
      m.dispose();
    }
    const r = spawnSync(
      process.execPath,
      [bin, 'merge', '--model', hf5Model('llama-tiny'), '--adapter', d, '--out', join(d, 'out')],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /lm_head\.base_layer\.weight' .* differs from the model's/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('layers_to_transform / layers_pattern / exclude_modules select the modules PEFT adapted', () => {
  const exp = hf5Expected('llama-tiny', 'adapter-layers');
  const cfg = JSON.parse(readFileSync(hf5Path('llama-tiny', 'adapter-layers', 'adapter_config.json'), 'utf8')) as never;
  const paths = [0, 1]
    .flatMap((l) =>
      ['q_proj', 'k_proj', 'v_proj', 'o_proj']
        .map((p) => `model.layers.${l}.self_attn.${p}`)
        .concat(['gate_proj', 'up_proj', 'down_proj'].map((p) => `model.layers.${l}.mlp.${p}`)),
    )
    .concat(['lm_head']);
  const chosen = paths.filter((p) => isTargetModule(cfg, p)).sort();
  const peft = (exp.adapter_keys as string[])
    .filter((k) => k.endsWith('.lora_A.weight'))
    .map((k) => k.slice('base_model.model.'.length, -'.lora_A.weight'.length))
    .sort();
  assert.deepEqual(chosen, peft);
  // PEFT's rules: an exact entry skips the layer filter; the index is the first "<name>.<n>." segment; layers_pattern names it
  const t = { target_modules: ['q_proj', 'lm_head'], layers_to_transform: 1 };
  assert.equal(isTargetModule(t, 'lm_head'), true);
  assert.equal(isTargetModule(t, 'model.layers.1.self_attn.q_proj'), true);
  assert.equal(isTargetModule(t, 'model.layers.0.self_attn.q_proj'), false);
  assert.equal(isTargetModule({ ...t, layers_pattern: 'layers' }, 'model.layers.1.experts.0.q_proj'), true);
  assert.equal(isTargetModule({ ...t, layers_pattern: ['blocks'] }, 'model.layers.1.self_attn.q_proj'), false);
  assert.equal(
    isTargetModule(
      { target_modules: ['q_proj'], exclude_modules: 'model\\.layers\\.0\\..*' },
      'model.layers.0.self_attn.q_proj',
    ),
    false,
  );
  assert.equal(
    isTargetModule(
      { target_modules: ['q_proj'], exclude_modules: 'layers\\.0\\..*' },
      'model.layers.0.self_attn.q_proj',
    ),
    true,
  ); // fullmatch
});

test('adapter config keys that change the math and are not implemented: one-line errors naming the key (library and CLI)', () => {
  const d = mkdtempSync(join(tmpdir(), 'medlora-peftkeys-'));
  try {
    const src = hf5Path('llama-tiny', 'adapter-lm-head');
    const cfg = JSON.parse(readFileSync(join(src, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ rank_pattern: { q_proj: 8 } }, /"rank_pattern" = \{"q_proj":8\} \(per-module ranks\) is not supported/],
      [{ alpha_pattern: { q_proj: 32 } }, /"alpha_pattern"/],
      // DoRA is a method of its own (src/adapt/methods/dora.ts): the plain LoRA loader points there
      [{ use_dora: true }, /use_dora=true \(DoRA\): load it as a DoRA adapter/],
      [{ lora_bias: true }, /"lora_bias" = true/],
      [{ modules_to_save: ['score'] }, /"modules_to_save" = \["score"\]/],
      [{ target_parameters: ['mlp.experts.gate_up_proj'] }, /"target_parameters"/],
      [{ layers_to_transform: 'all' }, /"layers_to_transform" must be a layer index, a list of layer indices or null/],
      [{ exclude_modules: 5 }, /"exclude_modules" must be a string, a list of strings or null/],
    ];
    for (const [i, [patch, re]] of cases.entries()) {
      const a = join(d, `a${i}`);
      mkdirSync(a);
      writeFileSync(join(a, 'adapter_config.json'), JSON.stringify({ ...cfg, ...patch }));
      copyFileSync(join(src, 'adapter_model.safetensors'), join(a, 'adapter_model.safetensors'));
      const m = loadModel(hf5Model('llama-tiny'));
      try {
        assert.throws(
          () => loadAdapter(m, a),
          (e: unknown) => e instanceof MedloraError && /adapter_config\.json: /.test(e.message) && re.test(e.message),
          JSON.stringify(patch),
        );
      } finally {
        m.dispose();
      }
      if (i === 0) {
        const r = spawnSync(
          process.execPath,
          [
            bin,
            'loss',
            '--model',
            hf5Model('llama-tiny'),
            '--adapter',
            a,
            '--data',
            hf5Path('llama-tiny', 'batch.json'),
          ],
          { encoding: 'utf8' },
        );
        assert.equal(r.status, 1);
        assert.match(r.stderr, /adapter_config\.json: "rank_pattern"/);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      }
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('medlora merge --dtype updates the transformers-5 "dtype" key (no stale torch_dtype added)', () => {
  const out = mkdtempSync(join(tmpdir(), 'medlora-hf5-dtype-'));
  try {
    mergeCheckpoint({
      model: hf5Model('llama-tiny'),
      adapter: hf5Path('llama-tiny', 'adapter-lm-head'),
      out,
      dtype: 'bf16',
    });
    const c = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(c.dtype, 'bfloat16');
    assert.equal('torch_dtype' in c, false);
    assert.equal(openCheckpoint(out).info('lm_head.weight').dtype, 'BF16');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('an unknown adapter_config.json key is a visible warning naming it and the file', async () => {
  const { setWarningHandler } = await import('../../src/util/warn.js');
  const { parseLoraConfig } = await import('../../src/io/peft.js');
  const got: string[] = [];
  const prev = setWarningHandler((m) => got.push(m));
  try {
    const cfg = JSON.parse(
      readFileSync(hf5Path('gpt2-tiny', 'adapter-lm-head', 'adapter_config.json'), 'utf8'),
    ) as Record<string, unknown>;
    parseLoraConfig(cfg, 'a/adapter_config.json');
    assert.deepEqual(got, [], 'every key PEFT 0.21 writes is known');
    parseLoraConfig({ ...cfg, lora_mystery_scale: 2 }, 'a/adapter_config.json');
    assert.equal(got.length, 1);
    assert.match(got[0]!, /a\/adapter_config\.json: unknown key "lora_mystery_scale" ignored/);
  } finally {
    setWarningHandler(prev);
  }
});

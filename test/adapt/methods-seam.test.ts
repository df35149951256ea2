// The method seam around the numerics: config keys (finetuning, lora.use_dora, adapter_v2 section), QLoRA (NF4 base)
// under every method, and the refusals (4-bit merge, method / init_adapter mismatch).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/model/loss.js';
import { noGrad, scope } from '../../src/tensor/index.js';
import { resolveConfig } from '../../src/train/config.js';
import { quantizeModel } from '../../src/adapt/nf4-linear.js';
import { methodNamed, mergeAnyAdapter } from '../../src/adapt/methods/index.js';
import { refBatch, refDir, skipNoShared } from '../model/fixtures.js';

test("config: finetuning defaults to lora; lora.use_dora is PEFT's spelling of dora; adapter_v2 has litgpt defaults", () => {
  const base = { model: 'm', output_dir: 'o', data: { train: 't' } };
  assert.equal(resolveConfig(base, []).finetuning, 'lora');
  const d = resolveConfig({ ...base, lora: { use_dora: true } }, []);
  assert.deepEqual([d.finetuning, d.lora.use_dora], ['dora', true]);
  const d2 = resolveConfig(base, [['finetuning', 'dora']]);
  assert.deepEqual([d2.finetuning, d2.lora.use_dora], ['dora', true], 'both keys say dora in the saved config');
  const a = resolveConfig({ ...base, finetuning: 'adapter_v2' }, []);
  assert.deepEqual(
    [a.adapter_v2.adapter_prompt_length, a.adapter_v2.adapter_start_layer, a.adapter_v2.target_modules],
    [10, 2, 'all'],
  );
  assert.throws(
    () => resolveConfig({ ...base, finetuning: 'adapter_v2', lora: { use_dora: true } }, []),
    /lora\.use_dora: true conflicts with finetuning: adapter_v2/,
  );
  assert.throws(
    () => resolveConfig({ ...base, finetuning: 'ia3' }, []),
    /finetuning must be one of lora, dora, adapter_v2/,
  );
  // the short flags LoRA had keep meaning LoRA's keys
  assert.deepEqual(resolveConfig(base, [['target_modules', 'q_proj,k_proj']]).lora.target_modules, [
    'q_proj',
    'k_proj',
  ]);
  assert.equal(resolveConfig(base, [['adapter_v2.adapter_start_layer', '0']]).adapter_v2.adapter_start_layer, 0);
});

test(
  'QLoRA composes with every method: NF4 base, fresh adapter == quantized base exactly, gradients reach every trainable tensor; merge refuses 4-bit',
  { skip: skipNoShared },
  () => {
    const { ids, labels } = refBatch('llama-tiny');
    for (const [method, settings] of [
      ['lora', { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj', 'down_proj'] }],
      ['dora', { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj', 'down_proj'] }],
      ['adapter_v2', { adapter_prompt_length: 4, adapter_start_layer: 1, target_modules: 'all' }],
    ] as const) {
      const model = loadModel(refDir('llama-tiny'));
      try {
        const q = quantizeModel(model, { skip: ['lm_head'] });
        assert.ok(q.layers.length >= 14);
        const base = noGrad(() => model.forward(ids).toFloat32Array());
        methodNamed(method).apply(model, settings as never);
        assert.deepEqual(
          Array.from(noGrad(() => model.forward(ids).toFloat32Array())),
          Array.from(base),
          `${method} over NF4: fresh == base`,
        );
        // make the adapters non-trivial so that every tensor gets a gradient
        noGrad(() => {
          for (const [k, p] of model.trainableParameters()) if (/lora_B|gating_factor/.test(k)) p.add_(0.05);
        });
        scope(() => causalLmLoss(model.forward(ids), labels).loss.backward());
        const tr = model.trainableParameters();
        assert.ok(tr.length > 0);
        for (const [k, p] of tr)
          assert.ok(
            p.grad && Array.from(p.grad.toFloat32Array()).some((v) => v !== 0),
            `${method}: ${k} has a non-zero gradient`,
          );
        if (method !== 'adapter_v2') assert.throws(() => mergeAnyAdapter(model), /4-bit/);
      } finally {
        model.dispose();
      }
    }
  },
);

test('ade-email presets: LoRA (batch 16, lr 3e-4, wd 0.01, 5 epochs, warmup 100) and Adapter-V2 (batch 8, lr 3e-3, wd 0.02, 5 epochs, warmup 2 of 5 epochs)', async () => {
  const { readConfigFile } = await import('../../src/train/config.js');
  const { join } = await import('node:path');
  const { packageRoot } = await import('../../src/util/paths.js');
  for (const m of ['llama2-7b', 'stablelm-3b']) {
    const flags: Array<[string, string]> = [
      ['model', 'M'],
      ['data.train', 'T'],
    ];
    const l = resolveConfig(readConfigFile(join(packageRoot(), 'configs', `ade-email-${m}-lora.yaml`)), flags);
    assert.deepEqual(
      [
        l.finetuning,
        l.training.per_device_train_batch_size,
        l.training.learning_rate,
        l.training.weight_decay,
        l.training.num_train_epochs,
        l.training.warmup_steps,
      ],
      ['lora', 16, 3e-4, 0.01, 5, 100],
    );
    const a = resolveConfig(readConfigFile(join(packageRoot(), 'configs', `ade-email-${m}-adapter-v2.yaml`)), flags);
    assert.deepEqual(
      [
        a.finetuning,
        a.training.per_device_train_batch_size,
        a.training.learning_rate,
        a.training.weight_decay,
        a.training.num_train_epochs,
        a.training.warmup_ratio,
        a.adapter_v2.adapter_prompt_length,
        a.adapter_v2.adapter_start_layer,
        a.adapter_v2.target_modules,
      ],
      ['adapter_v2', 8, 3e-3, 0.02, 5, 0.4, 10, 2, 'all'],
    );
  }
});

test(
  'medlora merge through the seam: a PEFT DoRA adapter merges to PEFT merge_and_unload logits; Adapter-V2 with a prefix is refused (exit 1, one line)',
  { skip: skipNoShared },
  async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { spawnSync } = await import('node:child_process');
    const { packageRoot } = await import('../../src/util/paths.js');
    const { openCheckpoint } = await import('../../src/io/safetensors.js');
    const { bytesToNumbers } = await import('../../src/io/dtype.js');
    const { assertClose } = await import('../../src/util/close.js');
    const fix = join(packageRoot(), 'test', 'fixtures', 'methods', 'llama-tiny');
    const out = mkdtempSync(join(tmpdir(), 'medlora-merge-dora-'));
    try {
      const bin = join(packageRoot(), 'bin', 'medlora.js');
      const r = spawnSync(
        process.execPath,
        [
          bin,
          'merge',
          '--model',
          refDir('llama-tiny'),
          '--adapter',
          join(fix, 'dora'),
          '--out',
          join(out, 'm'),
          '--json',
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      const done = JSON.parse(r.stdout.trim().split('\n').pop()!) as { method: string; merged_modules: string[] };
      assert.equal(done.method, 'dora');
      assert.equal(done.merged_modules.length, 15);
      const merged = loadModel(join(out, 'm'));
      const src = openCheckpoint(join(fix, 'expected.safetensors'));
      assertClose(
        noGrad(() => merged.forward(refBatch('llama-tiny').ids).toFloat32Array()),
        bytesToNumbers('F32', src.read('logits_dora_merged')),
        { atol: 1e-4, label: 'medlora merge (DoRA) vs PEFT merge_and_unload logits' },
      );
      merged.dispose();
      const a = spawnSync(
        process.execPath,
        [bin, 'merge', '--model', refDir('llama-tiny'), '--adapter', join(fix, 'adapter_v2'), '--out', join(out, 'a')],
        { encoding: 'utf8' },
      );
      assert.equal(a.status, 1);
      assert.match(a.stderr, /cannot merge an Adapter-V2 adapter with a prefix/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);

test('demo --methods: the list is checked against the methods; each fine-tune gets finetuning (and a prefix layer that exists)', async () => {
  const { parseMethods } = await import('../../src/demo/compare.js');
  const { finetuneOverrides } = await import('../../src/demo/finetune.js');
  const { demoSettings } = await import('../../src/demo/settings.js');
  assert.deepEqual(parseMethods('lora, dora,adapter_v2,lora'), ['lora', 'dora', 'adapter_v2']);
  assert.throws(
    () => parseMethods('lora,ia3'),
    /^MedloraError: methods: unknown ia3 \(known: lora, dora, adapter_v2\)/,
  );
  const o = {
    model: 'M',
    train: 't',
    validation: 'v',
    runDir: 'r',
    settings: demoSettings({}),
    seed: 1,
    promptStyle: 'chat' as const,
    method: 'adapter_v2',
    adapterStartLayer: 1,
  };
  const flags = new Map(finetuneOverrides(o));
  assert.equal(flags.get('finetuning'), 'adapter_v2');
  assert.equal(flags.get('adapter_v2.adapter_start_layer'), '1');
});

test(
  'Adapter-V2 prefix: a no-grad pass first does not rob the prefix of its gradient (litgpt #1287); KV-cache generation equals the full forward',
  { skip: skipNoShared },
  async () => {
    const { join } = await import('node:path');
    const { packageRoot } = await import('../../src/util/paths.js');
    const { tensor } = await import('../../src/tensor/index.js');
    const { loadAnyAdapter } = await import('../../src/adapt/methods/index.js');
    for (const name of ['llama-tiny', 'gpt2-tiny']) {
      const model = loadModel(refDir(name));
      try {
        loadAnyAdapter(model, join(packageRoot(), 'test', 'fixtures', 'methods', name, 'adapter_v2'));
        const { ids, labels } = refBatch(name);
        // 1. a pass without gradients (evaluation, generation) ... then a training pass
        const cache = model.newCache(2);
        noGrad(() => {
          model.forward(ids, { cache });
        });
        scope(() => causalLmLoss(model.forward(ids), labels).loss.backward());
        const wte = model.trainableParameters().filter(([k]) => /adapter_wte|gating_factor/.test(k));
        assert.ok(wte.length >= 2);
        for (const [k, p] of wte)
          assert.ok(
            p.grad && Array.from(p.grad.toFloat32Array()).some((v) => v !== 0),
            `${name}: ${k} gets a gradient after a no-grad pass`,
          );
        // 2. token-by-token with a KV cache (prefix k/v cached for this generation) == one full forward
        const row = ids.toNumbers().slice(0, 10);
        const full = noGrad(() => model.forward(tensor([row], { dtype: 'i64' })).toFloat32Array());
        const c2 = model.newCache(1);
        const steps: number[] = [];
        noGrad(() => {
          for (let i = 0; i < row.length; i++)
            steps.push(...model.forward(tensor([[row[i]!]], { dtype: 'i64' }), { cache: c2 }).toFloat32Array());
        });
        const { assertClose } = await import('../../src/util/close.js');
        assertClose(steps, full, { atol: 1e-5, label: `${name} Adapter-V2 cached generation vs full forward` });
      } finally {
        model.dispose();
      }
    }
  },
);

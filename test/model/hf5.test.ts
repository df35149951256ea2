// Files written by transformers 5.18 (save_pretrained: rope_parameters, dtype) and adapters written by PEFT 0.21 with its
// defaults (an lm_head LoRA stores lm_head.base_layer.weight; layers_to_transform; exclude_modules; GPT-2 Conv1D + Linear
// head): medlora's logits and loss equal what transformers (+ PEFT) computed from the same files (make_hf5.py), within
// the reference tolerance (F32: 1e-4), through the library and through `medlora loss`. Also shows the check fails
// for the old reading (rope_parameters ignored).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, symlinkSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/model/load.js';
import { causalLmLoss } from '../../src/model/loss.js';
import { loadAdapter } from '../../src/adapt/peft-io.js';
import { noGrad, scope, tensor } from '../../src/tensor/index.js';
import { assertClose, compareClose } from '../../src/util/close.js';
import { packageRoot } from '../../src/util/paths.js';
import { parseArgs } from '../../src/cli/command.js';
import { lossCommand } from '../../src/cli/commands/loss.js';
import { HF5_ADAPTERS, HF5_MODELS, hf5Batch, hf5Expected, hf5Model, hf5Path, hf5Tensor } from './hf5.js';

const TOL = 1e-4; // shared/fixtures/reference/README.md: F32 logits and losses

function logitsAndLoss(dir: string, name: string, adapter?: string): { logits: Float32Array; loss: number } {
  const m = loadModel(dir);
  try {
    if (adapter) loadAdapter(m, adapter);
    return scope(() =>
      noGrad(() => {
        const b = hf5Batch(name);
        const lg = m.forward(tensor(b.input_ids, { dtype: 'i64' }));
        const { loss } = causalLmLoss(lg, tensor(b.labels, { dtype: 'i64' }));
        return { logits: lg.toFloat32Array(), loss: loss.item() as number };
      }),
    );
  } finally {
    m.dispose();
  }
}

async function cliLoss(...args: string[]): Promise<number> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => {
    lines.push(a.map(String).join(' '));
  };
  try {
    await lossCommand.run(parseArgs(lossCommand, [...args, '--json']));
  } finally {
    console.log = orig;
  }
  return (JSON.parse(lines.join('\n')) as { loss: number }).loss;
}

test('transformers-5 re-saved checkpoints: logits and loss equal transformers (library and medlora loss)', async () => {
  for (const name of HF5_MODELS) {
    const dir = hf5Model(name);
    const { logits, loss } = logitsAndLoss(dir, name);
    const exp = hf5Expected(name);
    const r = compareClose(logits, hf5Tensor('logits', name), { atol: TOL, label: `${name} logits` });
    console.log(
      `  ${name}: max |logits diff| ${r.maxAbsDiff.toExponential(2)}, |loss diff| ${Math.abs(loss - exp.loss).toExponential(2)}`,
    );
    assert.ok(r.ok, r.message);
    assertClose([loss], [exp.loss], { atol: TOL, label: `${name} loss` });
    const viaCli = await cliLoss('--model', dir, '--data', hf5Path(name, 'batch.json'));
    assertClose([viaCli], [exp.loss], { atol: TOL, label: `${name} medlora loss` });
  }
});

test('the check can fail: ignoring rope_parameters (the old reading) is off by far more than the tolerance', () => {
  for (const [name, least] of [
    ['llama3-tiny-tied', 0.1],
    ['qwen2-tiny', 0.01],
    ['llama-tiny-linear', 0.01],
  ] as const) {
    const d = mkdtempSync(join(tmpdir(), 'medlora-hf5-old-'));
    try {
      const cfg = JSON.parse(readFileSync(join(hf5Model(name), 'config.json'), 'utf8')) as Record<string, unknown>;
      delete cfg.rope_parameters; // what medlora read before: theta 10000, no scaling
      writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
      symlinkSync(realpathSync(join(hf5Model(name), 'model.safetensors')), join(d, 'model.safetensors'));
      const r = compareClose(logitsAndLoss(d, name).logits, hf5Tensor('logits', name), { atol: TOL, label: name });
      console.log(
        `  ${name} without rope_parameters: max |logits diff| ${r.maxAbsDiff.toFixed(4)} (fails, as it must)`,
      );
      assert.ok(!r.ok && r.maxAbsDiff > least);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }
});

test('PEFT 0.21 adapters saved with defaults: logits and loss equal transformers + PEFT (library and medlora loss)', async () => {
  for (const [name, ad] of HF5_ADAPTERS) {
    const adapter = hf5Path(name, ad);
    const keys = hf5Expected(name, ad).adapter_keys as string[];
    assert.ok(
      keys.includes(`base_model.model.lm_head.base_layer.weight`),
      `${name}/${ad} carries PEFT's lm_head base copy`,
    );
    const { logits, loss } = logitsAndLoss(hf5Model(name), name, adapter);
    const exp = hf5Expected(name, ad);
    const r = compareClose(logits, hf5Tensor('logits_lora', name, ad), { atol: TOL, label: `${name}/${ad} logits` });
    console.log(
      `  ${name}/${ad}: max |logits diff| ${r.maxAbsDiff.toExponential(2)}, |loss diff| ${Math.abs(loss - exp.loss_lora).toExponential(2)}`,
    );
    assert.ok(r.ok, r.message);
    assertClose([loss], [exp.loss_lora], { atol: TOL, label: `${name}/${ad} loss` });
    const viaCli = await cliLoss(
      '--model',
      hf5Model(name),
      '--adapter',
      adapter,
      '--data',
      hf5Path(name, 'batch.json'),
    );
    assertClose([viaCli], [exp.loss_lora], { atol: TOL, label: `${name}/${ad} medlora loss --adapter` });
  }
});

test('medlora loss (spawned) on the transformers-5 Llama-3 checkpoint; a bad config key is one line and exit 1', () => {
  const bin = join(packageRoot(), 'bin', 'medlora.js');
  const ok = spawnSync(
    process.execPath,
    [
      bin,
      'loss',
      '--model',
      hf5Model('llama3-tiny-tied'),
      '--data',
      hf5Path('llama3-tiny-tied', 'batch.json'),
      '--json',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(ok.status, 0, ok.stderr);
  assertClose([(JSON.parse(ok.stdout) as { loss: number }).loss], [hf5Expected('llama3-tiny-tied').loss], {
    atol: TOL,
    label: 'spawned medlora loss',
  });
  const d = mkdtempSync(join(tmpdir(), 'medlora-hf5-bad-'));
  try {
    const cfg = JSON.parse(readFileSync(hf5Path('llama-tiny', 'config.json'), 'utf8')) as Record<string, unknown>;
    copyFileSync(hf5Path('llama-tiny', 'model.safetensors'), join(d, 'model.safetensors'));
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [
        { rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 10000 } },
        /config\.json: rope_parameters\.rope_type "yarn" is not supported/,
      ],
      [
        { attn_logit_softcapping: 50.0 },
        /config\.json: "attn_logit_softcapping" = 50 .* is not supported for model_type llama/,
      ],
      [
        { rope_parameters: { rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.5 } },
        /config\.json: partial_rotary_factor 0\.5 is not supported for model_type llama/,
      ],
    ];
    for (const [patch, re] of cases) {
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, ...patch }));
      const bad = spawnSync(
        process.execPath,
        [bin, 'loss', '--model', d, '--data', hf5Path('llama-tiny', 'batch.json')],
        { encoding: 'utf8' },
      );
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, re);
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
      console.log(`  ${bad.stderr.trim()}`);
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('Qwen2 with use_sliding_window in use: inputs within the window equal full attention, longer ones are refused', () => {
  const d = mkdtempSync(join(tmpdir(), 'medlora-hf5-qwen2-swa-'));
  try {
    const cfg = JSON.parse(readFileSync(hf5Path('qwen2-tiny', 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(
      join(d, 'config.json'),
      JSON.stringify({
        ...cfg,
        use_sliding_window: true,
        sliding_window: 24,
        layer_types: ['full_attention', 'sliding_attention'],
      }),
    );
    symlinkSync(hf5Path('qwen2-tiny', 'model.safetensors'), join(d, 'model.safetensors'));
    const { logits } = logitsAndLoss(d, 'qwen2-tiny'); // T = 24: inside the window
    assertClose(logits, hf5Tensor('logits', 'qwen2-tiny'), { atol: TOL, label: 'qwen2 within the sliding window' });
    const m = loadModel(d);
    try {
      assert.throws(
        () => noGrad(() => m.forward(tensor([new Array<number>(25).fill(3)], { dtype: 'i64' }))),
        /25 positions exceed sliding_window 24/,
      );
    } finally {
      m.dispose();
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('tie_word_embeddings=true with a different lm_head.weight in the file: the embedding is used (as transformers) and a warning says so', async () => {
  const { setWarningHandler } = await import('../../src/util/warn.js');
  const { openCheckpoint, readAll, writeSafetensors } = await import('../../src/io/safetensors.js');
  const d = mkdtempSync(join(tmpdir(), 'medlora-hf5-tied-'));
  const got: string[] = [];
  const prev = setWarningHandler((m) => got.push(m));
  try {
    copyFileSync(hf5Path('llama3-tiny-tied', 'config.json'), join(d, 'config.json'));
    const w = readAll(openCheckpoint(hf5Model('llama3-tiny-tied')));
    const emb = w['model.embed_tokens.weight']!;
    w['lm_head.weight'] = { ...emb, data: emb.data.slice() };
    writeSafetensors(join(d, 'model.safetensors'), w);
    logitsAndLoss(d, 'llama3-tiny-tied');
    assert.deepEqual(got, [], 'an identical copy is silent');
    const other = new Float32Array(emb.data.slice().buffer);
    other[0] = other[0]! + 1;
    w['lm_head.weight'] = { ...emb, data: new Uint8Array(other.buffer) };
    writeSafetensors(join(d, 'model.safetensors'), w);
    const { logits } = logitsAndLoss(d, 'llama3-tiny-tied');
    assertClose(logits, hf5Tensor('logits', 'llama3-tiny-tied'), { atol: TOL, label: 'tied head uses the embedding' });
    assert.equal(got.length, 1);
    assert.match(
      got[0]!,
      /model\.safetensors: config\.json has tie_word_embeddings=true, so 'lm_head\.weight' \(which differs from 'model\.embed_tokens\.weight'\) is ignored/,
    );
  } finally {
    setWarningHandler(prev);
    rmSync(d, { recursive: true, force: true });
  }
});

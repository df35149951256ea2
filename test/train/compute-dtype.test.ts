// The training compute dtype is decided in one place (src/train/config.ts computeDtype) from the config and the CPU's
// bf16 units (injected here), and the run records the decision in config.resolved.json and report.html.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeDtype, readConfigFile, resolveConfig } from '../../src/train/config.js';
import { runTraining } from '../../src/train/run.js';
import { hasShared, sharedPath } from '../../src/util/paths.js';

test('computeDtype: bf16 asked on a CPU without bf16 units computes in f32 with a notice; compute_dtype bf16 forces it', () => {
  const none: string[] = [],
    zen4 = ['AVX512-BF16'];
  const f32 = computeDtype({ bf16: true, compute_dtype: 'auto' }, none);
  assert.equal(f32.dtype, 'f32');
  assert.equal(f32.recorded, 'f32');
  assert.match(f32.note!, /no bf16 matrix units.*computing in f32.*training.compute_dtype: bf16 forces bf16/);
  assert.deepEqual(computeDtype({ bf16: true, compute_dtype: 'auto' }, zen4), {
    dtype: 'bf16',
    recorded: 'bf16',
    note: null,
  });
  const forced = computeDtype({ bf16: true, compute_dtype: 'bf16' }, none);
  assert.equal(forced.dtype, 'bf16');
  assert.match(forced.note!, /emulated/);
  assert.deepEqual(computeDtype({ bf16: false, compute_dtype: 'auto' }, none), {
    dtype: null,
    recorded: 'auto',
    note: null,
  });
  assert.deepEqual(computeDtype({ bf16: true, compute_dtype: 'f32' }, zen4), {
    dtype: 'f32',
    recorded: 'f32',
    note: null,
  });
  // a recorded decision is stable: deciding again from the resolved value gives the same dtype
  assert.equal(computeDtype({ bf16: true, compute_dtype: f32.recorded }, zen4).dtype, 'f32');
});

test(
  'a bf16 run on a CPU without bf16 units trains in f32 and records it',
  { skip: !hasShared() && 'needs ../shared' },
  async () => {
    const f = sharedPath('fixtures', 'reference', 'llama-tiny');
    const batch = JSON.parse(readFileSync(join(f, 'batch.json'), 'utf8')) as {
      input_ids: number[][];
      labels: number[][];
    };
    const dir = mkdtempSync(join(tmpdir(), 'medlora-dtype-'));
    writeFileSync(
      join(dir, 'train.jsonl'),
      batch.input_ids.map((ids, i) => JSON.stringify({ input_ids: ids, labels: batch.labels[i] })).join('\n') + '\n',
    );
    writeFileSync(
      join(dir, 'cfg.yaml'),
      `model: ${f}\ndata: { train: ${join(dir, 'train.jsonl')} }\nlora: { r: 4, lora_alpha: 8, target_modules: [q_proj, v_proj] }\n` +
        `training: { bf16: true, learning_rate: 1.0e-3, max_steps: 2, per_device_train_batch_size: 2, logging_steps: 1, save_steps: null }\n`,
    );
    for (const [units, want] of [
      [[], 'f32'],
      [['AMX-BF16'], 'bf16'],
    ] as const) {
      const out = join(dir, `run-${want}`);
      const cfg = resolveConfig(readConfigFile(join(dir, 'cfg.yaml')), [['output_dir', out]]);
      assert.equal(cfg.training.compute_dtype, 'auto');
      const res = await runTraining(cfg, { quiet: true, bf16Units: units });
      assert.equal(res.steps, 2);
      const resolved = JSON.parse(readFileSync(join(out, 'config.resolved.json'), 'utf8')) as {
        training: { bf16: boolean; compute_dtype: string };
      };
      assert.deepEqual([resolved.training.bf16, resolved.training.compute_dtype], [true, want]);
      assert.match(
        readFileSync(join(out, 'report.html'), 'utf8'),
        new RegExp(`compute dtype.*${want} \\(bf16 asked\\)`, 's'),
      );
      console.log(
        `  CPU bf16 units [${units.join(', ')}] -> training.compute_dtype ${resolved.training.compute_dtype}`,
      );
    }
  },
);

// quantization.load_in_4bit through `medlora train`: the base linears become NF4 (reported), a fresh LoRA trains on
// top, and the loss falls on the reference batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';

test(
  'QLoRA: load_in_4bit quantizes the base, LoRA trains, loss falls',
  { skip: !hasShared() && 'needs ../shared' },
  () => {
    const f = sharedPath('fixtures', 'reference', 'llama-tiny');
    const batch = JSON.parse(readFileSync(join(f, 'batch.json'), 'utf8')) as {
      input_ids: number[][];
      labels: number[][];
    };
    const dir = mkdtempSync(join(tmpdir(), 'medlora-qlora-'));
    writeFileSync(
      join(dir, 'train.jsonl'),
      batch.input_ids.map((ids, i) => JSON.stringify({ input_ids: ids, labels: batch.labels[i] })).join('\n') + '\n',
    );
    writeFileSync(
      join(dir, 'cfg.yaml'),
      `model: ${f}\ndata: { train: ${join(dir, 'train.jsonl')} }\nquantization: { load_in_4bit: true }\n` +
        `lora: { r: 4, lora_alpha: 8, target_modules: [q_proj, k_proj, v_proj, o_proj] }\n` +
        `training: { learning_rate: 1.0e-2, max_steps: 8, per_device_train_batch_size: 2, logging_steps: 1, shuffle: false, save_steps: null }\noutput_dir: ${join(dir, 'run')}\n`,
    );
    const r = spawnSync(
      process.execPath,
      [
        join(packageRoot(), 'bin', 'medlora.js'),
        'train',
        '--config',
        join(dir, 'cfg.yaml'),
        '--json',
        '--threads',
        '1',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; message?: string });
    const note = events.find((e) => e.event === 'note' && /NF4/.test(e.message ?? ''));
    assert.ok(note, 'the NF4 quantization is reported');
    console.log(`  ${note.message}`);
    const losses = readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { loss: number }).loss);
    console.log(`  losses ${losses.map((l) => l.toFixed(4)).join(' ')}`);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses.at(-1)! < losses[0]! - 0.1);
  },
);

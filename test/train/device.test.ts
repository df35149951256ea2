// training.device / --device: the setting resolves in one place (src/tensor/device.ts), decides bf16 on a GPU without
// asking the CPU, picks the ranks' backend, and on a CPU-only build a CUDA request is a clear error before anything is
// written. (The CUDA path itself runs on a GPU machine: scripts in docs/PERFORMANCE.md.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cudaDeviceCount, engineInfo, resolveDevice, setNumThreads } from '../../src/tensor/index.js';
import { computeDtype, resolveConfig } from '../../src/train/config.js';
import { checkBackendDevice, runTraining } from '../../src/train/run.js';
import { MedloraError } from '../../src/util/errors.js';
import { packageRoot } from '../../src/util/paths.js';
import type { MedRecord } from '../../src/data/schema.js';
import { taskRecords, tinyFixture, writeRecords } from '../evalcli/tiny.js';

setNumThreads(1);
const BIN = join(packageRoot(), 'bin', 'medlora.js');
const cudaBuild = engineInfo().compiledWithCuda;

function config(name: string, device?: string): { file: string; run: string; raw: Record<string, unknown> } {
  const fx = tinyFixture();
  const data = writeRecords('device-train.jsonl', taskRecords().chemicals as MedRecord[]);
  const run = join(fx.root, name);
  const file = join(fx.root, `${name}.json`);
  const raw = {
    model: fx.model,
    output_dir: run,
    data: { train: data },
    lora: { r: 4, lora_alpha: 8 },
    training: {
      max_steps: 2,
      learning_rate: 0.01,
      per_device_train_batch_size: 2,
      save_steps: null,
      logging_steps: 1,
      ...(device ? { device } : {}),
    },
  };
  writeFileSync(file, JSON.stringify(raw));
  return { file, run, raw };
}

test('computeDtype on a GPU: bf16 when asked, whatever the CPU has; f32 and the default unchanged', () => {
  for (const device of ['cuda:0', 'cuda:3'] as const) {
    assert.deepEqual(computeDtype({ bf16: true, compute_dtype: 'auto' }, [], device), {
      dtype: 'bf16',
      recorded: 'bf16',
      note: null,
    });
    assert.equal(computeDtype({ bf16: false, compute_dtype: 'bf16' }, [], device).note, null);
    assert.equal(computeDtype({ bf16: true, compute_dtype: 'f32' }, [], device).dtype, 'f32');
    assert.equal(computeDtype({ bf16: false, compute_dtype: 'auto' }, [], device).dtype, null);
  }
  // the CPU answer is unchanged (no bf16 units: f32 with a note)
  assert.equal(computeDtype({ bf16: true, compute_dtype: 'auto' }, [], 'cpu').dtype, 'f32');
});

test('the ranks backend must reach the gradients: nccl for CUDA, gloo for the CPU', () => {
  assert.doesNotThrow(() => checkBackendDevice(undefined, 'cuda:0'));
  assert.doesNotThrow(() => checkBackendDevice('gloo', 'cpu'));
  assert.doesNotThrow(() => checkBackendDevice('nccl', 'cuda:1'));
  assert.throws(
    () => checkBackendDevice('nccl', 'cpu'),
    (e: unknown) =>
      e instanceof MedloraError && e.field === 'device' && /NCCL reduces CUDA tensors only/.test(e.message),
  );
  assert.throws(() => checkBackendDevice('gloo', 'cuda:0'), /use the nccl backend/);
});

test(
  'training.device: auto (the default) and cpu train the same on this machine; the log names the device',
  { skip: resolveDevice('auto', { what: 'auto' }).device !== 'cpu' && 'auto picks a GPU here' },
  async () => {
    const a = config('device-auto');
    const c = config('device-cpu', 'cpu');
    assert.equal(resolveConfig(a.raw, [], a.file).training.device, 'auto');
    const ra = await runTraining(resolveConfig(a.raw, [], a.file), { quiet: true });
    const rc = await runTraining(resolveConfig(c.raw, [], c.file), { quiet: true });
    const losses = (run: string): number[] =>
      readFileSync(join(run, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { loss?: number })
        .flatMap((r) => (r.loss === undefined ? [] : [r.loss]));
    assert.ok(losses(a.run).length >= 2);
    assert.deepEqual(losses(a.run), losses(c.run));
    assert.equal(ra.steps, rc.steps);
    // the resolved config keeps the word as written (auto travels with a run to another machine)
    const saved = JSON.parse(readFileSync(join(a.run, 'config.resolved.json'), 'utf8')) as {
      training: { device: string };
    };
    assert.equal(saved.training.device, cudaBuild ? saved.training.device : 'auto');
    if (!cudaBuild) assert.match(readFileSync(join(a.run, 'adapter', 'README.md'), 'utf8'), /CPU \(/);
  },
);

test(
  '--device cuda without a GPU: one clear line naming the setting, exit 1, no run folder',
  { skip: cudaDeviceCount() > 0 && 'a CUDA GPU is visible' },
  () => {
    const c = config('device-cuda');
    const r = spawnSync(process.execPath, [BIN, 'train', '--config', c.file, '--device', 'cuda', '--quiet'], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    console.log(`# stderr: ${r.stderr.trim()}`);
    assert.equal(r.status, 1);
    // a CPU-only addon, or a CUDA build on a machine without a GPU (the CUDA wheel's addon, docs/DISTRIBUTED.md)
    assert.match(
      r.stderr,
      cudaBuild
        ? /training\.device cuda: no CUDA GPU is visible to this process/
        : /training\.device cuda: this medlora addon was built against a CPU-only libtorch/,
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(existsSync(c.run), false, 'nothing written');
    // a word that is no device is refused by the config check, naming the key
    const bad = spawnSync(process.execPath, [BIN, 'train', '--config', c.file, '--device', 'gpu', '--quiet'], {
      encoding: 'utf8',
    });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /training\.device must be auto, cpu, cuda or cuda:N, got "gpu"/);
  },
);

test('a rank told --dist-backend nccl while training on the CPU stops before joining the job', () => {
  const c = config('device-nccl', 'cpu');
  const env = {
    ...process.env,
    OMP_NUM_THREADS: '1',
    WORLD_SIZE: '2',
    RANK: '0',
    LOCAL_RANK: '0',
    LOCAL_WORLD_SIZE: '2',
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: '29581',
  };
  const r = spawnSync(process.execPath, [BIN, 'train', '--config', c.file, '--dist-backend', 'nccl', '--quiet'], {
    encoding: 'utf8',
    env,
    timeout: 60_000,
  });
  console.log(`# stderr: ${r.stderr.trim()}`);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /--dist-backend nccl: NCCL reduces CUDA tensors only, and training\.device cpu is the CPU here/,
  );
});

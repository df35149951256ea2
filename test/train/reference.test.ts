// End-to-end through `medlora train` on every reference fixture: a 12-step run from the fixture's adapter on its
// batch (as a 2-row JSONL file) must reproduce expected.json's train_loss, learning_rate and grad_norm; and a run
// killed with SIGKILL at an arbitrary point, then resumed, must log exactly the losses of an uninterrupted run. The
// 12-step runs train on MEDLORA_TEST_DEVICE (test/device.ts, `--device`); the resume and CLI tests stay on the CPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { assertClose } from '../../src/util/close.js';
import { referenceRunFolder, trajectoryTolerances } from './reference-run.js';
import { cpuOnly, onDevice, trainDeviceArgs } from '../device.js';

const BIN = join(packageRoot(), 'bin', 'medlora.js');
const REF = sharedPath('fixtures', 'reference');

interface Rec {
  step: number;
  loss?: number;
  learning_rate?: number;
  grad_norm?: number;
  eval_loss?: number;
  tokens_per_second?: number;
}

function metrics(out: string): Rec[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
}

function medlora(args: string[]): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

const folders = hasShared()
  ? readdirSync(REF)
      .filter((d) => existsSync(join(REF, d, 'expected.json')))
      .sort()
  : [];

test('reference fixtures present', (t) => {
  if (!hasShared()) t.skip('../shared is not available');
  else assert.ok(folders.length >= 5, `found ${folders.join(', ')}`);
});

for (const folder of folders) {
  test(`medlora train reproduces ${folder}/expected.json (12 steps from its adapter)`, () => {
    const { cfg, out, exp } = referenceRunFolder(folder);
    const r = medlora([
      'train',
      '--config',
      cfg,
      '--threads',
      '1',
      '--quiet',
      '--save_steps',
      'null',
      ...trainDeviceArgs(),
    ]);
    assert.equal(r.status, 0, r.stderr);
    const recs = metrics(out).filter((x) => x.loss !== undefined);
    assert.deepEqual(
      recs.map((x) => x.step),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    const tol = trajectoryTolerances(folder);
    assertClose(
      recs.map((x) => x.loss!),
      exp.train_loss,
      { atol: tol.loss, label: onDevice(`${folder} train_loss`) },
    );
    assertClose(
      recs.map((x) => x.learning_rate!),
      exp.learning_rate,
      { atol: 1e-12, label: onDevice(`${folder} learning_rate`) },
    );
    assertClose(
      recs.map((x) => x.grad_norm!),
      exp.grad_norm,
      { rtolMaxAbs: tol.gradNorm, label: onDevice(`${folder} grad_norm`) },
    );
    // the final adapter is a PEFT folder
    assert.ok(
      existsSync(join(out, 'adapter', 'adapter_config.json')) &&
        existsSync(join(out, 'adapter', 'adapter_model.safetensors')),
    );
    assert.ok(existsSync(join(out, 'report.html')) && existsSync(join(out, 'config.resolved.json')));
  });
}

test(
  'SIGKILL at an arbitrary point, then --resume latest in a new process: same metrics as an uninterrupted run',
  { skip: !hasShared() || cpuOnly },
  async () => {
    const training = { max_steps: 30, save_steps: 4, shuffle: true, eval_steps: 5 };
    const a = referenceRunFolder('llama-tiny', training);
    const full = medlora(['train', '--config', a.cfg, '--threads', '1', '--quiet']);
    assert.equal(full.status, 0, full.stderr);
    const b = referenceRunFolder('llama-tiny', training);
    const child = spawn(process.execPath, [BIN, 'train', '--config', b.cfg, '--threads', '1', '--quiet'], {
      stdio: 'ignore',
    });
    const killedAt = await new Promise<number>((res) => {
      const timer = setInterval(() => {
        const steps = existsSync(join(b.out, 'metrics.jsonl')) ? metrics(b.out).length : 0;
        if (steps >= 11) {
          child.kill('SIGKILL');
          clearInterval(timer);
          res(steps);
        }
      }, 5);
    });
    const sig = await new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_c, s) => res(s)));
    assert.equal(sig, 'SIGKILL', 'the first run must have been killed, not finished');
    console.log(
      `  killed after ${killedAt} metric lines; checkpoints: ${readdirSync(b.out)
        .filter((n) => n.startsWith('checkpoint-'))
        .join(', ')}`,
    );
    const res = medlora(['train', '--config', b.cfg, '--threads', '1', '--quiet', '--resume', 'latest']);
    assert.equal(res.status, 0, res.stderr);
    const strip = (rs: Rec[]): Rec[] => rs.map((r) => ({ ...r, tokens_per_second: 0 }));
    assert.deepEqual(strip(metrics(b.out)), strip(metrics(a.out)));
  },
);

test(
  'Ctrl-C (SIGINT) saves a checkpoint, exits 130 and says how to resume',
  { skip: !hasShared() || cpuOnly },
  async () => {
    const s = referenceRunFolder('qwen2-tiny', { max_steps: 40, save_steps: 100 });
    const child = spawn(process.execPath, [BIN, 'train', '--config', s.cfg, '--threads', '1', '--quiet'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setInterval(() => {
      if (existsSync(join(s.out, 'metrics.jsonl')) && metrics(s.out).length >= 3) {
        child.kill('SIGINT');
        clearInterval(timer);
      }
    }, 5);
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    assert.equal(code, 130, stderr);
    const cks = readdirSync(s.out).filter((n) => n.startsWith('checkpoint-'));
    assert.equal(cks.length, 1);
    const step = Number(cks[0]!.split('-')[1]);
    assert.ok(step >= 3 && step < 40);
    assert.equal(metrics(s.out).at(-1)!.step, step);
    // the hint is a command that works as printed: the run folder alone (test/train/resume-cli.test.ts runs it)
    assert.ok(stderr.includes(`Resume with: medlora train --resume ${s.out}`), stderr);
  },
);

test(
  'CLI errors: unknown override key, existing run without --resume, bad --threads',
  { skip: !hasShared() || cpuOnly },
  () => {
    const s = referenceRunFolder('llama-tiny', { max_steps: 1 });
    let r = medlora(['train', '--config', s.cfg, '--max_stepz', '3']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--max_stepz: unknown config key/);
    r = medlora(['train', '--config', s.cfg, '--threads', '1', '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    r = medlora(['train', '--config', s.cfg]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already holds a run .*--resume latest/);
    r = medlora(['train', '--config', s.cfg, '--threads', '0']);
    assert.match(r.stderr, /--threads must be a positive integer/);
    r = medlora(['train', '--config', s.cfg, '--dry-run', '--learning_rate', '0.5', '--output', '/tmp/x']);
    assert.equal(r.status, 0);
    const c = JSON.parse(r.stdout) as { training: { learning_rate: number }; output_dir: string };
    assert.equal(c.training.learning_rate, 0.5);
    assert.equal(c.output_dir, '/tmp/x');
  },
);

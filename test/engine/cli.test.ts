// `medlora doctor` end to end, and the native build's one-line message when libtorch cannot be found.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';

const root = packageRoot();

test('medlora doctor --json reports libtorch, threads and a correct, positive matmul self-test', () => {
  const r = spawnSync(
    process.execPath,
    [join(root, 'bin', 'medlora.js'), 'doctor', '--json', '--seconds', '0.05', '--size', '128', '--no-python'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as {
    libtorch: { version: string; foundBy: string };
    threads: number;
    selfTest: { matmulCorrect: boolean; f32Gflops: number; bf16Gflops: number };
    cuda: { devices: number };
    autoDevice: string;
  };
  console.log(`  ${r.stdout.trim()}`);
  // what training.device auto picks: the CPU unless a CUDA device is visible
  assert.equal(report.autoDevice, report.cuda.devices > 0 ? 'cuda:0' : 'cpu');
  assert.match(report.libtorch.version, /^\d+\.\d+/);
  assert.ok(report.threads >= 1);
  assert.equal(report.selfTest.matmulCorrect, true);
  assert.ok(report.selfTest.f32Gflops > 0 && report.selfTest.bf16Gflops > 0);
});

test('medlora doctor rejects a bad option value with one line', () => {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'medlora.js'), 'doctor', '--size', '0'], {
    encoding: 'utf8',
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /^medlora doctor: error: --seconds must be > 0 and --size a positive integer\n$/);
});

test('the native build names what to do when LIBTORCH does not point at libtorch', () => {
  const out = mkdtempSync(join(tmpdir(), 'medlora-build-'));
  const r = spawnSync(process.execPath, [join(root, 'native', 'build.mjs')], {
    encoding: 'utf8',
    env: { ...process.env, LIBTORCH: '/nonexistent/libtorch', MEDLORA_NATIVE_BUILD_DIR: out },
  });
  assert.equal(r.status, 1);
  console.log(`  ${r.stderr.trim()}`);
  assert.match(r.stderr, /^medlora native build: LIBTORCH=\/nonexistent\/libtorch does not look like libtorch/);
  assert.ok(r.stderr.split('\n').length <= 3, 'one clear message, not a compiler dump');
});

test(
  'medlora doctor with its defaults answers in under 30 s and compares with this machine only',
  { timeout: 60_000 },
  () => {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(root, 'bin', 'medlora.js'), 'doctor', '--json'], { encoding: 'utf8' });
    const s = (performance.now() - t0) / 1e3;
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as {
      reference: { kind: string; f32Gflops: number | null; why?: string };
      selfTest: { size: number; bf16Size: number };
    };
    console.log(
      `  doctor took ${s.toFixed(1)} s (process), sizes ${report.selfTest.size}/${report.selfTest.bf16Size}, reference ${JSON.stringify(report.reference)}`,
    );
    assert.ok(s < 30, `doctor took ${s.toFixed(1)} s`);
    assert.ok(['python-torch', 'cpu-peak-estimate'].includes(report.reference.kind));
    assert.ok(!('REFERENCE' in report));
  },
);

// scripts/gpu-check.sh is the one command a session with a GPU runs (docs/PERFORMANCE.md, "On a GPU"): its device time
// is scarce, so the script itself is run here on the CPU at its smallest sizes, and every stage must report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared, packageRoot } from '../../src/util/paths.js';

test(
  'gpu-check.sh --device cpu --quick: doctor, numerics, bench:recipe and bench:train all run and report',
  { skip: !hasShared() && 'needs ../shared', timeout: 600_000 },
  () => {
    const out = mkdtempSync(join(tmpdir(), 'medlora-gpu-check-'));
    const r = spawnSync('bash', ['scripts/gpu-check.sh', '--device', 'cpu', '--quick'], {
      cwd: packageRoot(),
      encoding: 'utf8',
      env: { ...process.env, OUT: out },
      timeout: 560_000,
    });
    const summary = readFileSync(join(out, 'summary.txt'), 'utf8');
    console.log(summary.replace(/^/gm, '# '));
    assert.equal(r.status, 0, `${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
    assert.match(summary, /doctor exit 0/);
    assert.match(summary, /--device cpu -> cpu/);
    assert.match(summary, /numerics \(MEDLORA_TEST_DEVICE=cpu\): exit 0; tests (\d+) pass \1 fail 0/);
    assert.match(summary, /bench:recipe .*--device cpu: exit 0/);
    assert.match(summary, /medlora: [\d.]+ s, \d+ tok\/s/);
    assert.match(summary, /bench:train .*--device cpu: exit 0/);
    assert.match(summary, /\] done$/m);
  },
);

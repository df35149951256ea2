// bench/entry.ts: a bench started through a symbolic link to dist/ (as on a GPU machine, where dist is a link to
// .gpu/dist) still runs its main; a plain comparison of argv[1] with import.meta.url made it exit silently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const distBench = dirname(fileURLToPath(import.meta.url));

test('a bench run through a symlinked dist/ runs its main (bench:train answers an unknown --config)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'medlora-entry-'));
  try {
    symlinkSync(distBench, join(tmp, 'bench'));
    const r = spawnSync(process.execPath, [join(tmp, 'bench', 'train.js'), '--config', 'no-such-shape'], {
      encoding: 'utf8',
    });
    console.log(`  exit ${r.status}: ${r.stderr.trim()}`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unknown --config "no-such-shape"/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

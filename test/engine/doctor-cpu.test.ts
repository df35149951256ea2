// doctor's CPU feature report: bf16 matrix units are read from /proc/cpuinfo flags (hand-written samples).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuInfo } from '../../src/cli/commands/doctor.js';

const dir = mkdtempSync(join(tmpdir(), 'medlora-cpu-'));
function sample(name: string, flags: string): string {
  const p = join(dir, name);
  writeFileSync(p, `processor\t: 0\nmodel name\t: Test CPU @ 2.5GHz\nflags\t\t: fpu sse2 ${flags}\n\nprocessor\t: 1\n`);
  return p;
}

test('cpuInfo finds AMX-BF16 and AVX512-BF16 from the flags line', () => {
  assert.deepEqual(cpuInfo(sample('spr', 'avx512f amx_bf16 amx_tile avx512_bf16')), { model: 'Test CPU @ 2.5GHz', bf16Units: ['AMX-BF16', 'AVX512-BF16'] });
});

test('cpuInfo reports no bf16 units on a plain AVX-512 CPU, and copes with a missing file', () => {
  assert.deepEqual(cpuInfo(sample('skx', 'avx512f avx512bw')).bf16Units, []);
  assert.deepEqual(cpuInfo(join(dir, 'absent')), { model: null, bf16Units: [] });
});

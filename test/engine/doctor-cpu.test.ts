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
  assert.deepEqual(cpuInfo(sample('spr', 'avx512f amx_bf16 amx_tile avx512_bf16')), {
    model: 'Test CPU @ 2.5GHz',
    bf16Units: ['AMX-BF16', 'AVX512-BF16'],
  });
});

test('cpuInfo reports no bf16 units on a plain AVX-512 CPU, and copes with a missing file', () => {
  assert.deepEqual(cpuInfo(sample('skx', 'avx512f avx512bw')).bf16Units, []);
  assert.deepEqual(cpuInfo(join(dir, 'absent')), { model: null, bf16Units: [] });
});

test('peakGflops: cores x GHz x FLOPs/cycle from the flags (hand-computed), none for emulated bf16', async () => {
  const { peakGflops } = await import('../../src/tensor/cpu.js');
  const base = { model: 'x', vendor: 'GenuineIntel', ghz: 2.5, bf16Units: [] as string[] };
  // Sapphire Rapids-like: 2 cores x 2.5 GHz x 64 = 320; AMX bf16 2 x 2.5 x 1024 = 5120
  assert.deepEqual(
    [
      peakGflops({ ...base, flags: ['avx512f', 'amx_bf16'] }, 2).f32,
      peakGflops({ ...base, flags: ['avx512f', 'amx_bf16'] }, 2).bf16,
    ],
    [320, 5120],
  );
  // Zen 4: AVX-512 on 2 x 256-bit pipes = 32 f32/cycle; AVX512-BF16 twice that
  const zen = peakGflops(
    { ...base, vendor: 'AuthenticAMD', ghz: 2, flags: ['avx512f', 'avx512_bf16', 'avx2', 'fma'] },
    2,
  );
  assert.deepEqual([zen.f32, zen.bf16], [128, 256]);
  // AVX2 + FMA without bf16 units: bf16 emulated -> no peak
  const hsw = peakGflops({ ...base, flags: ['avx2', 'fma'] }, 4);
  assert.deepEqual([hsw.f32, hsw.bf16], [320, null]);
  assert.match(hsw.basis, /4 core\(s\) x 2\.50 GHz x 32 f32 FLOP\/cycle/);
  assert.equal(peakGflops({ ...base, ghz: null, flags: ['avx2'] }, 2).f32, null);
});

test('pickSize sizes the matmul to the time budget (a 64-multiple in 64..2048)', async () => {
  const { pickSize } = await import('../../src/cli/commands/doctor.js');
  // 1.3 GFLOP/s (emulated bf16): one call of seconds/6 = 1/6 s -> n = cbrt(1/6 * 1.3e9 / 2) = 476 -> 448
  assert.equal(
    pickSize(() => 1.3, 1),
    448,
  );
  // 100 GFLOP/s: cbrt(1/6 * 1e11 / 2) = 2027 -> 1984
  assert.equal(
    pickSize(() => 100, 1),
    1984,
  );
  assert.equal(
    pickSize(() => 1e5, 1),
    2048,
  );
  assert.equal(
    pickSize(() => 1e-4, 1),
    64,
  );
});

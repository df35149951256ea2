// What the CPU can do, from /proc/cpuinfo (Linux): model, vendor, clock, bf16 matrix units, and an estimate of its
// theoretical matmul peak. Used by `medlora doctor` (what to compare against) and the training dtype decision
// (src/train/config.ts computeDtype: bf16 is emulated, and far slower than f32, without bf16 units).
import { existsSync, readFileSync } from 'node:fs';

export interface CpuFacts {
  model: string | null;
  vendor: string | null;
  /** nominal clock in GHz: cpuinfo_max_freq when the kernel exposes it, else the "cpu MHz" line */
  ghz: number | null;
  flags: string[];
  /** bf16 matrix instructions: AMX-BF16, AVX512-BF16 (x86), BF16 (Arm "bf16" feature) */
  bf16Units: string[];
}

export function cpuFacts(
  path = '/proc/cpuinfo',
  maxFreqPath = '/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq',
): CpuFacts {
  if (!existsSync(path)) return { model: null, vendor: null, ghz: null, flags: [], bf16Units: [] };
  const text = readFileSync(path, 'utf8');
  const field = (k: string): string | undefined => new RegExp(`^${k}\\s*:\\s*(.+)$`, 'm').exec(text)?.[1]?.trim();
  const model = field('model name') ?? field('Model') ?? null;
  const vendor = field('vendor_id') ?? field('CPU implementer') ?? null;
  const flags = (field('flags') ?? field('Features') ?? '').split(/\s+/).filter(Boolean);
  const has = new Set(flags);
  const bf16Units = [
    ['amx_bf16', 'AMX-BF16'],
    ['avx512_bf16', 'AVX512-BF16'],
    ['bf16', 'BF16'],
  ]
    .filter(([f]) => has.has(f!))
    .map(([, n]) => n!);
  let ghz: number | null = null;
  try {
    if (existsSync(maxFreqPath)) ghz = Number(readFileSync(maxFreqPath, 'utf8').trim()) / 1e6;
  } catch {
    /* not readable */
  }
  if (!(ghz! > 0)) {
    const mhz = Number(field('cpu MHz'));
    ghz = mhz > 0 ? mhz / 1000 : null;
  }
  return { model, vendor, ghz, flags, bf16Units };
}

export interface PeakEstimate {
  f32: number | null;
  bf16: number | null;
  /** how it was computed, e.g. "2 cores x 2.10 GHz x 32 f32 FLOP/cycle (AVX-512 on AMD: 2 x 256-bit FMA)" */
  basis: string;
}

/**
 * Theoretical matmul peak in GFLOP/s for `cores` cores: cores x GHz x FLOPs per cycle, FLOPs per cycle from the vector
 * units in the flags (2 FMA pipes x lanes x 2; Intel optimization manual, AMD Zen 4 software optimization guide). An
 * estimate: turbo, AVX-512 down-clocking and single-FMA-pipe SKUs move it. bf16: AVX512-BF16 (VDPBF16PS) does twice
 * the f32 rate; AMX-BF16 1024 FLOP/cycle per core (Intel); none: emulated, no peak.
 */
export function peakGflops(cpu: CpuFacts, cores: number): PeakEstimate {
  const has = new Set(cpu.flags);
  const amd = /AMD/i.test(cpu.vendor ?? '');
  let f32PerCycle: number, unit: string;
  if (has.has('avx512f')) {
    f32PerCycle = amd ? 32 : 64;
    unit = amd ? 'AVX-512 on AMD: 2 x 256-bit FMA pipes' : 'AVX-512: 2 FMA pipes x 16 lanes x 2';
  } else if (has.has('avx2') && has.has('fma')) {
    f32PerCycle = 32;
    unit = 'AVX2: 2 FMA pipes x 8 lanes x 2';
  } else if (has.has('avx')) {
    f32PerCycle = 16;
    unit = 'AVX: 8-lane add + mul';
  } else if (has.has('asimd')) {
    f32PerCycle = 16;
    unit = 'NEON: 2 x 4-lane FMA x 2 (estimate)';
  } else {
    f32PerCycle = 8;
    unit = 'SSE: 4-lane add + mul';
  }
  if (cpu.ghz === null) return { f32: null, bf16: null, basis: 'the CPU clock is unknown' };
  const f32 = cores * cpu.ghz * f32PerCycle;
  const bf16 = has.has('amx_bf16')
    ? cores * cpu.ghz * 1024
    : has.has('avx512_bf16') || has.has('bf16')
      ? 2 * f32
      : null;
  return {
    f32,
    bf16,
    basis:
      `${cores} core(s) x ${cpu.ghz.toFixed(2)} GHz x ${f32PerCycle} f32 FLOP/cycle (${unit})` +
      `${bf16 === null ? '; bf16 emulated (no bf16 units)' : has.has('amx_bf16') ? '; bf16: AMX 1024 FLOP/cycle' : '; bf16: 2x f32 (dot-product units)'}`,
  };
}

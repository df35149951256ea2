// Process-wide engine settings and facts: RNG seed, threads, devices, build info, live tensor count.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addonPath, N } from './native.js';

/** Seed the CPU (and every CUDA) generator: randn/rand/randint/dropout become reproducible. */
export function manualSeed(seed: number): void {
  N.manualSeed(seed);
}
export function setNumThreads(n: number): void {
  N.setNumThreads(n);
}
export function getNumThreads(): number {
  return N.getNumThreads() as number;
}
export function cudaIsAvailable(): boolean {
  return N.cudaIsAvailable() as boolean;
}
export function cudaDeviceCount(): number {
  return N.cudaDeviceCount() as number;
}
/** Wait for the kernels queued on a CUDA device (a GPU step's time is only known after it). */
export function cudaSynchronize(index = 0): void {
  N.cudaSynchronize(index);
}

export interface CudaMemoryStats {
  /** bytes held by live tensors now / at the peak since the start or the last reset (torch.cuda.memory_allocated, max_memory_allocated) */
  allocated: number;
  peakAllocated: number;
  /** bytes the caching allocator holds from the driver now / at the peak (torch.cuda.memory_reserved, max_memory_reserved) */
  reserved: number;
  peakReserved: number;
}

/** The caching allocator's counters of one CUDA device (an engine error on a build without CUDA). */
export function cudaMemoryStats(index = 0): CudaMemoryStats {
  return N.cudaMemoryStats(index) as CudaMemoryStats;
}

/** Start the peak counters of cudaMemoryStats again (torch.cuda.reset_peak_memory_stats). */
export function cudaResetPeakMemoryStats(index = 0): void {
  N.cudaResetPeakMemoryStats(index);
}

/** Tensor handles not yet disposed or collected (for leak tests). */
export function liveTensorCount(): number {
  return N.liveTensorCount() as number;
}

export interface EngineInfo {
  /** libtorch version the addon was compiled against */
  torchVersion: string;
  cxx11Abi: number;
  compiledWithCuda: boolean;
  hasMKL: boolean;
  hasMKLDNN: boolean;
  hasOpenMP: boolean;
  parallelInfo: string;
  /** how the build found libtorch (native/build/libtorch.json), if recorded */
  foundBy?: string;
  libDir?: string;
  fullVersion?: string;
  addon: string;
}

export function engineInfo(): EngineInfo {
  const info = N.engineInfo() as Omit<EngineInfo, 'addon'>;
  const out: EngineInfo = { ...info, addon: addonPath() };
  try {
    const j = JSON.parse(readFileSync(join(addonPath(), '..', 'libtorch.json'), 'utf8')) as {
      how: string;
      libDir: string;
      version: string;
    };
    out.foundBy = j.how;
    out.libDir = j.libDir;
    out.fullVersion = j.version;
  } catch {
    // built by hand without the record: the compiled-in version is still known
  }
  return out;
}

/** Native bytes reported to V8 as external memory (so GC sees them): ours, and V8's whole external total. */
export function externalMemory(): { reported: number; v8: number } {
  return N.externalMemory() as { reported: number; v8: number };
}

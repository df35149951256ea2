// `medlora doctor`: where libtorch came from, its version and build features, CUDA devices, threads, and a short
// fp32 / bf16 matmul self-test (correctness and GFLOP/s). The first thing a new user runs.
import { loadavg } from 'node:os';
import type { CommandSpec } from '../command.js';
import { bool, num } from '../command.js';
import { MedloraError } from '../../util/errors.js';

export const doctor: CommandSpec = {
  name: 'doctor',
  summary: 'check the compute engine: libtorch, devices, threads, matmul speed',
  options: {
    json: { type: 'boolean', description: 'print one JSON object instead of text' },
    seconds: { type: 'number', description: 'seconds per matmul self-test', default: 1, value: 'S' },
    size: { type: 'number', description: 'matrix size of the self-test', default: 2048, value: 'N' },
  },
  async run(args) {
    const seconds = num(args, 'seconds') ?? 1;
    const size = num(args, 'size') ?? 2048;
    if (!(seconds > 0) || !Number.isInteger(size) || size < 1) {
      throw new MedloraError('--seconds must be > 0 and --size a positive integer');
    }
    // loaded here so that a missing addon is reported as one clear line by this command
    const T = await import('../../tensor/index.js');
    const info = T.engineInfo();
    // correctness first: [[1,2],[3,4]]^2 = [[7,10],[15,22]] (by hand)
    const sq = T.scope(() => { const m = T.tensor([[1, 2], [3, 4]]); return Array.from(m.matmul(m).toFloat32Array()); });
    const correct = sq.join(',') === '7,10,15,22';
    const cuda = T.cudaDeviceCount();
    const f32 = T.matmulRate(size, 'f32', seconds);
    const bf16 = T.matmulRate(size, 'bf16', seconds);
    const report = {
      libtorch: { version: info.fullVersion ?? info.torchVersion, foundBy: info.foundBy ?? 'unknown', libDir: info.libDir ?? null,
        cxx11Abi: info.cxx11Abi, compiledWithCuda: info.compiledWithCuda, mkl: info.hasMKL, onednn: info.hasMKLDNN, openmp: info.hasOpenMP },
      addon: info.addon,
      cuda: { available: T.cudaIsAvailable(), devices: cuda },
      threads: T.getNumThreads(),
      physicalCores: T.physicalCores(),
      selfTest: { matmulCorrect: correct, size, f32Gflops: round(f32.gflops), bf16Gflops: round(bf16.gflops) },
    };
    if (bool(args, 'json')) {
      console.log(JSON.stringify(report));
    } else {
      const yn = (b: boolean): string => (b ? 'yes' : 'no');
      const ref = (key: string, g: number): string => {
        const r = T.REFERENCE_GFLOPS[key];
        return r && size === 2048 ? ` (${Math.round((100 * g) / r)}% of torch's ${fmt(r)} on the reference 2-core machine)` : '';
      };
      const load = loadavg()[0]!;
      if (load > report.physicalCores) {
        console.log(`note: the machine is busy (1-min load ${load.toFixed(1)} on ${report.physicalCores} cores); the matmul figures will be low`);
      }
      console.log([
        `libtorch   ${report.libtorch.version}, found via ${report.libtorch.foundBy}`,
        `           ${report.libtorch.libDir ?? ''}`,
        `build      C++11 ABI ${info.cxx11Abi}, CUDA compiled ${yn(info.compiledWithCuda)}, MKL ${yn(info.hasMKL)}, oneDNN ${yn(info.hasMKLDNN)}, OpenMP ${yn(info.hasOpenMP)}`,
        `CUDA       ${cuda > 0 ? `${cuda} device(s)` : 'no devices'}`,
        `threads    ${report.threads} (physical cores: ${report.physicalCores}; set MEDLORA_NUM_THREADS to change)`,
        `matmul     ${correct ? 'correct' : 'WRONG RESULT'} (2x2 check)`,
        `fp32       ${size}x${size}: ${fmt(f32.gflops)}${ref('f32@2048', f32.gflops)}`,
        `bf16       ${size}x${size}: ${fmt(bf16.gflops)}${ref('bf16@2048', bf16.gflops)}`,
      ].join('\n'));
    }
    return correct ? 0 : 1;
  },
};

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

function fmt(gflops: number): string {
  return gflops >= 1000 ? `${(gflops / 1000).toFixed(2)} TFLOP/s` : `${gflops.toFixed(0)} GFLOP/s`;
}

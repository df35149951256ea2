// Small engine measurements shared by `medlora doctor` and `npm run bench:engine`: matmul throughput and the cost of
// one op call from JS. Reference ceilings come from ../shared/bench/README.md (2-core Sapphire Rapids, torch 2.13).
import { noGrad } from './autograd.js';
import { scope } from './scope.js';
import { ones, randn } from './tensor.js';
import type { DType } from './dtype.js';

/** Matmul ceilings measured with torch itself on the project's 2-core machine (../shared/bench/README.md). */
export const REFERENCE_GFLOPS: Readonly<Record<string, number>> = {
  'f32@2048': 430,
  'bf16@1024': 1600,
  'bf16@2048': 2700,
};

export interface MatmulRate {
  n: number;
  dtype: DType;
  /** from the fastest single call */
  gflops: number;
  /** from the mean over all timed calls */
  meanGflops: number;
  calls: number;
}

/** Time n x n @ n x n matmuls for about `seconds` (after one warm-up call); 2 n^3 FLOPs per call. */
export function matmulRate(n: number, dtype: DType, seconds = 1): MatmulRate {
  return scope(() =>
    noGrad(() => {
      const a = randn([n, n], { dtype });
      const b = randn([n, n], { dtype });
      a.matmul(b).dispose();
      let best = Infinity,
        total = 0,
        calls = 0;
      while (total < seconds * 1e3 || calls < 2) {
        const t0 = performance.now();
        a.matmul(b).dispose();
        const dt = performance.now() - t0;
        best = Math.min(best, dt);
        total += dt;
        calls++;
      }
      const flops = 2 * n ** 3;
      return { n, dtype, gflops: flops / (best * 1e6), meanGflops: (flops * calls) / (total * 1e6), calls };
    }),
  );
}

export interface OpCallCost {
  /** wall-clock microseconds per call */
  wall: number;
  /** CPU microseconds per call (this process, user + system): steadier than wall time on a busy machine */
  cpu: number;
}

/** Cost of `a.add(b)` + dispose on one-element tensors: the fixed price of calling an op from JS (best of 5 runs). */
export function opCallMicros(iterations = 20000): OpCallCost {
  return scope(() =>
    noGrad(() => {
      const a = ones([1]);
      const b = ones([1]);
      for (let i = 0; i < 2000; i++) a.add(b).dispose();
      let wall = Infinity,
        cpu = Infinity;
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        for (let i = 0; i < iterations; i++) a.add(b).dispose();
        const c = process.cpuUsage(c0);
        wall = Math.min(wall, ((performance.now() - t0) * 1e3) / iterations);
        cpu = Math.min(cpu, (c.user + c.system) / iterations);
      }
      return { wall, cpu };
    }),
  );
}

// `node dist/bench/shapes.js`: GFLOP/s of the frozen-base matmuls of a LoRA step at the model's shapes, forward
// (x W^T) and backward to the input (dy W), for several row counts T, alternating T within one process and timed in
// CPU seconds (process.cpuUsage), so a busy shared machine slows every variant alike. Issue 19, lever 1 and 2.
// --dropout: the LoRA dropout (p 0.05) forward + backward at [T, 576] and [T, 1536], ATen's against the engine's.
import { fromHandle, noGrad, randn, scope, setNumThreads, type Handle } from '../src/tensor/index.js';
import { N } from '../src/tensor/native.js';

const args = process.argv.slice(2);
const arg = (k: string, d: string): string => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1]! : d;
};
const Ts = arg('--rows', '240,940').split(',').map(Number);
const reps = Number(arg('--reps', '20'));
const rounds = Number(arg('--rounds', '3'));
if (args.includes('--threads')) setNumThreads(Number(arg('--threads', '2')));
// [in, out] of the smollm2-135m projections (config: hidden 576, 9 heads / 3 kv heads of 64, intermediate 1536)
const shapes: [string, number, number][] = (
  arg(
    '--shapes',
    'q:576x576,kv:576x192,qkv:576x960,gate:576x1536,gateup:576x3072,down:1536x576,head:576x49152',
  ) as string
)
  .split(',')
  .map((s) => {
    const [n, d] = s.split(':') as [string, string];
    const [i, o] = d.split('x').map(Number) as [number, number];
    return [n, i, o];
  });

const cpuS = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const best = new Map<string, number>();
const bestWall = new Map<string, number>();
noGrad(() => {
  for (let r = 0; r < rounds; r++) {
    for (const [name, din, dout] of shapes) {
      for (const T of r % 2 ? [...Ts].reverse() : Ts) {
        scope(() => {
          const x = randn([T, din]);
          const w = randn([dout, din]);
          const dy = randn([T, dout]);
          const n = name === 'head' ? Math.max(1, Math.floor(reps / 10)) : reps;
          for (const dir of ['fwd', 'bwd'] as const) {
            const f = dir === 'fwd' ? () => x.matmul(w.transpose(0, 1)) : () => dy.matmul(w);
            f().dispose();
            const c0 = cpuS();
            let fastest = Infinity;
            for (let i = 0; i < n; i++) {
              const t0 = performance.now();
              f().dispose();
              fastest = Math.min(fastest, (performance.now() - t0) / 1e3);
            }
            const dt = (cpuS() - c0) / n;
            const flop = 2 * T * din * dout;
            const k = `${name} ${dir} T=${T}`;
            best.set(k, Math.max(best.get(k) ?? 0, flop / dt / 1e9));
            bestWall.set(k, Math.max(bestWall.get(k) ?? 0, flop / fastest / 1e9));
          }
        });
      }
    }
  }
});
console.log('GFLOP/s per CPU second (best of rounds) / wall-clock GFLOP/s of the fastest call');
for (const [k, g] of best) console.log(`${k.padEnd(22)} ${g.toFixed(1)} / ${bestWall.get(k)!.toFixed(1)}`);

if (args.includes('--dropout')) {
  const wall = new Map<string, number>();
  const cpu = new Map<string, number>();
  for (let r = 0; r < rounds; r++) {
    for (const T of Ts) {
      for (const width of [576, 1536]) {
        for (const impl of r % 2 ? ['engine', 'aten'] : ['aten', 'engine']) {
          scope(() => {
            const x = randn([T, width]).requiresGrad_(true);
            const fn = impl === 'aten' ? N.atenDropout! : N.dropout!;
            const once = (): void =>
              scope(() => {
                const y = fromHandle(fn(x.h, 0.05, true) as Handle);
                y.sum().backward();
              });
            once();
            const c0 = cpuS(),
              t0 = performance.now();
            for (let i = 0; i < reps; i++) once();
            const k = `dropout ${impl} [${T}, ${width}]`;
            cpu.set(k, Math.min(cpu.get(k) ?? Infinity, ((cpuS() - c0) / reps) * 1e3));
            wall.set(k, Math.min(wall.get(k) ?? Infinity, (performance.now() - t0) / reps));
          });
        }
      }
    }
  }
  console.log('dropout p 0.05 forward + backward (+ sum), best of rounds: CPU ms / wall ms per call');
  for (const [k, c] of cpu) console.log(`${k.padEnd(32)} ${c.toFixed(3)} / ${wall.get(k)!.toFixed(3)}`);
}

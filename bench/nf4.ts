// `node dist/bench/nf4.js`: dequantizing one NF4 weight (default 14336 x 4096, Llama-3.1-8B's gate/up projection) to
// bf16 with the engine's one-pass kernel (dequantizeNf4, native/src/nf4.cc) and with the ATen chain it replaced
// (dequantizeNf4Reference), alternating in one process: wall time, process CPU time (all threads, process.cpuUsage)
// and peak resident-set growth per call (VmHWM after minus VmRSS before, the peak reset via /proc/self/clear_refs as
// test/adapt/nf4-load-rss.ts does). Options: --rows --cols --reps --dtype --double-quant. docs/PERFORMANCE.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { getNumThreads, manualSeed, randn, scope, type DType, type Tensor } from '../src/tensor/index.js';
import { dequantizeNf4, dequantizeNf4Reference, disposeNf4, quantizeNf4 } from '../src/adapt/nf4.js';

const { values: a } = parseArgs({
  options: {
    rows: { type: 'string', default: '14336' },
    cols: { type: 'string', default: '4096' },
    reps: { type: 'string', default: '3' },
    dtype: { type: 'string', default: 'bf16' },
    'double-quant': { type: 'boolean', default: false },
  },
});
const rows = Number(a.rows),
  cols = Number(a.cols),
  reps = Number(a.reps);
const dtype = a.dtype as DType;
const MB = 2 ** 20;

const kb = (field: string): number => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
};
/** Reset the peak RSS to the current RSS; returns the baseline to measure growth from. */
function resetPeak(): number {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return kb('VmRSS');
  } catch {
    return kb('VmHWM'); // no reset possible: growth above the peak so far (an under-estimate)
  }
}

manualSeed(1);
const w = randn([rows, cols], { dtype });
const q = quantizeNf4(w, { doubleQuant: a['double-quant'] });
w.dispose();

type Row = { wall: number; cpu: number; peak: number };
const res: Record<'native' | 'aten', Row[]> = { native: [], aten: [] };
function once(kind: 'native' | 'aten'): Tensor {
  const base = resetPeak();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const out = kind === 'native' ? dequantizeNf4(q, dtype) : dequantizeNf4Reference(q, dtype);
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  res[kind].push({ wall, cpu: (c.user + c.system) / 1000, peak: kb('VmHWM') - base });
  return out;
}

// check once that both give the same bytes (test/adapt/nf4-native.test.ts is the real test)
scope(() => {
  const x = Buffer.from(dequantizeNf4(q, dtype).toBytes());
  const y = Buffer.from(dequantizeNf4Reference(q, dtype).toBytes());
  if (!x.equals(y)) throw new Error('native and ATen dequantize differ');
});
for (let r = 0; r < reps; r++) {
  for (const kind of r % 2 === 0 ? (['aten', 'native'] as const) : (['native', 'aten'] as const)) once(kind).dispose();
}
const median = (xs: number[]): number => [...xs].sort((p, s) => p - s)[Math.floor(xs.length / 2)]!;
const outMb = (rows * cols * (dtype === 'f32' ? 4 : dtype === 'f64' ? 8 : 2)) / MB;
console.log(
  `NF4 dequantize [${rows}, ${cols}] -> ${dtype}${a['double-quant'] ? ' (double quant)' : ''}, ${reps} reps each, ` +
    `${getNumThreads()} engine threads, 1-min load ${loadavg()[0]!.toFixed(2)}, output ${outMb.toFixed(0)} MB`,
);
for (const kind of ['aten', 'native'] as const) {
  const rs = res[kind];
  console.log(
    `${kind.padEnd(6)} wall ${rs.map((r) => r.wall.toFixed(0)).join('/')} ms (median ${median(rs.map((r) => r.wall)).toFixed(0)})` +
      `, cpu ${rs.map((r) => r.cpu.toFixed(0)).join('/')} ms, peak RSS growth ` +
      `${rs.map((r) => (r.peak / MB).toFixed(0)).join('/')} MB`,
  );
}
const ratio = median(res.aten.map((r) => r.wall)) / median(res.native.map((r) => r.wall));
console.log(`native is ${ratio.toFixed(1)}x faster (median wall)`);
disposeNf4(q);

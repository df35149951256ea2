// `npm run bench:engine`: matmul GFLOP/s (fp32, bf16) at 512/1024/2048 and the cost of one op call from JS, with the
// ratio to the ceilings measured with torch itself in ../shared/bench/README.md. --json prints one JSON object.
import { loadavg } from 'node:os';
import * as T from '../src/tensor/index.js';

const json = process.argv.includes('--json');
const seconds = Number(process.env.MEDLORA_BENCH_SECONDS ?? 1);

function fmt(g: number): string {
  return g >= 1000 ? `${(g / 1000).toFixed(2)} TFLOP/s` : `${g.toFixed(0)} GFLOP/s`;
}

const rows: Array<{
  dtype: string;
  n: number;
  gflops: number;
  meanGflops: number;
  reference: number | null;
  ratio: number | null;
}> = [];
for (const dtype of ['f32', 'bf16'] as const) {
  for (const n of [512, 1024, 2048]) {
    const r = T.matmulRate(n, dtype, seconds);
    const ref = T.REFERENCE_GFLOPS[`${dtype}@${n}`] ?? null;
    rows.push({
      dtype,
      n,
      gflops: r.gflops,
      meanGflops: r.meanGflops,
      reference: ref,
      ratio: ref ? r.gflops / ref : null,
    });
  }
}
const opMicros = T.opCallMicros();
const info = T.engineInfo();
const load = loadavg()[0]!;
const cores = T.physicalCores();
if (json) {
  console.log(
    JSON.stringify({
      libtorch: info.fullVersion ?? info.torchVersion,
      threads: T.getNumThreads(),
      load1: load,
      matmul: rows,
      opCallMicros: opMicros,
    }),
  );
} else {
  console.log(
    `medlora engine bench: libtorch ${info.fullVersion ?? info.torchVersion} (${info.foundBy ?? '?'}), ${T.getNumThreads()} threads`,
  );
  if (load > cores)
    console.log(`warning: the machine is busy (1-min load ${load.toFixed(1)} on ${cores} cores); figures will be low`);
  console.log('');
  console.log('| dtype | n | best GFLOP/s | mean GFLOP/s | torch ceiling (shared/bench) | ratio |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.dtype} | ${r.n} | ${fmt(r.gflops)} | ${fmt(r.meanGflops)} | ${r.reference ? fmt(r.reference) : '-'} | ${r.ratio ? `${(100 * r.ratio).toFixed(0)}%` : '-'} |`,
    );
  }
  console.log('');
  console.log(
    `one op call from JS (add of two 1-element tensors + dispose): ${opMicros.wall.toFixed(2)} µs wall, ` +
      `${opMicros.cpu.toFixed(2)} µs CPU (torch 2.13 eager from Python: ~3.9 µs CPU for the same a+b, measured on this machine)`,
  );
}

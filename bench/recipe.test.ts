// bench:recipe / bench:scale pure parts against published figures: the FLOP count's parameter total (SmolLM2-135M's
// model card count), the 8B checkpoint's tensor list (Llama-3.1-8B's 8,030,261,248 parameters), shard planning,
// the token count of the updates, the /proc readers the benchmark measures its children with, and the device matmul
// ceiling of --device cuda (its timing path run on the CPU here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasShared, packageRoot, sharedPath } from '../src/util/paths.js';
import { SHAPES } from './train.js';
import {
  deviceMatmulGflops,
  loraFlopsPerToken,
  matmulParams,
  procCpuSeconds,
  procPeakRssGb,
  procTreePids,
  tokensOf,
  treeCpuSeconds,
  treePeakRssGb,
} from './recipe.js';
import { llamaTensors, planShards } from './scale.js';

test('matmulParams: SmolLM2-135M = 134,515,008 parameters minus the tied embedding and the 61 norms, plus an untied head', () => {
  // HF: SmolLM2-135M has 134,515,008 parameters (tied embedding 49152 x 576; 30 x 2 + 1 RMSNorm weights of 576)
  const expected = 134_515_008 - 49152 * 576 - 61 * 576 + 49152 * 576;
  const got = matmulParams(SHAPES['smollm2-135m']!);
  console.log(`matmul params ${got}, expected ${expected}, difference ${got - expected}`);
  assert.equal(got, expected);
  assert.equal(loraFlopsPerToken(SHAPES['smollm2-135m']!), 4 * expected);
});

test('llamaTensors: the Llama-3.1-8B config gives 8,030,261,248 parameters (Meta model card), HF names', () => {
  const cfg = JSON.parse(readFileSync(sharedPath('fixtures', 'hf', 'Llama-3.1-8B', 'config.json'), 'utf8')) as Record<
    string,
    number | boolean
  >;
  const ts = llamaTensors(cfg);
  const n = ts.reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
  console.log(`8B tensors ${ts.length}, parameters ${n}, difference ${n - 8_030_261_248}`);
  assert.equal(n, 8_030_261_248);
  assert.equal(ts.length, 1 + 32 * 9 + 1 + 1);
  assert.deepEqual(ts.find(([k]) => k === 'model.layers.0.self_attn.k_proj.weight')![1], [1024, 4096]);
  // shards: every tensor exactly once, each shard under the limit unless a lone tensor is bigger
  const shards = planShards(ts, 5e9);
  assert.equal(shards.flat().length, ts.length);
  for (const s of shards) {
    const b = s.reduce((a, [, sh]) => a + 2 * sh.reduce((x, y) => x * y, 1), 0);
    assert.ok(b <= 5e9 || s.length === 1, `shard of ${b} bytes`);
  }
});

test('deviceMatmulGflops (the --device cuda ceiling: products timed to an item() sync) gives a rate from its rounds', () => {
  const r = deviceMatmulGflops('cpu', 128, 'f32', 4, 2);
  console.log(
    `cpu f32 128: ${r.gflops.toFixed(2)} GFLOP/s, rounds ${r.rounds_ms.map((x) => x.toFixed(2)).join(' / ')} ms`,
  );
  assert.equal(r.rounds_ms.length, 2);
  // the rate is the best round's: 4 products of 2 x 128^3 FLOPs
  assert.ok(Math.abs(r.gflops - (4 * 2 * 128 ** 3) / (Math.min(...r.rounds_ms) * 1e6)) < 1e-9 * r.gflops);
  assert.ok(r.gflops > 0 && Number.isFinite(r.gflops));
});

test('tokensOf: rows read in order and wrapped, batch x accum per update', () => {
  const rows = [{ input_ids: [1, 2, 3] }, { input_ids: [1, 2] }, { input_ids: [5] }];
  // 2 updates x 1 x 2 = 4 rows: 3 + 2 + 1 + 3
  assert.equal(tokensOf(rows, 2, 1, 2), 9);
  assert.notEqual(tokensOf(rows, 2, 1, 2), tokensOf(rows, 2, 2, 2));
});

test('procCpuSeconds (/proc/<pid>/stat user + sys) agrees with getrusage (process.cpuUsage) over a busy loop', () => {
  const p0 = procCpuSeconds(process.pid),
    u0 = process.cpuUsage();
  let x = 0;
  // busy until getrusage counts 0.3 CPU-s (however loaded the machine is)
  while (process.cpuUsage(u0).user < 3e5) for (let i = 0; i < 1e5; i++) x += Math.sqrt(x + 1);
  const p1 = procCpuSeconds(process.pid),
    u = process.cpuUsage(u0);
  assert.ok(p0 !== undefined && p1 !== undefined && x > 0);
  const proc = p1 - p0,
    rusage = (u.user + u.system) / 1e6;
  console.log(
    `busy loop: /proc ${proc.toFixed(3)} CPU-s, getrusage ${rusage.toFixed(3)} CPU-s, diff ${(proc - rusage).toFixed(3)}`,
  );
  // /proc counts user and sys in clock ticks (10 ms), each truncated: allow 5 ticks
  assert.ok(Math.abs(proc - rusage) <= 0.05, `${proc} vs ${rusage}`);
  assert.ok(proc > 0.25, 'the loop consumed CPU');
  assert.equal(procCpuSeconds(2 ** 30), undefined, 'no such process');
});

test('procPeakRssGb (VmHWM) is at least the resident memory after touching 64 MB more', () => {
  const before = procPeakRssGb(process.pid)!;
  const buf = Buffer.alloc(64 << 20, 1); // touched: resident
  const rss = process.memoryUsage().rss / 1e9;
  const after = procPeakRssGb(process.pid)!;
  console.log(
    `VmHWM ${before.toFixed(3)} -> ${after.toFixed(3)} GB; rss ${rss.toFixed(3)} GB (${buf.length} bytes held)`,
  );
  assert.ok(after >= rss - 0.01, `peak ${after} GB below the current rss ${rss} GB`);
  assert.ok(after >= before);
  assert.equal(procPeakRssGb(undefined), undefined);
});

test('procTreePids / treeCpuSeconds: a launcher and its busy child (as --nproc-per-node N runs its ranks) add up', async () => {
  // a shell whose child burns ~0.4 s of CPU: the shell's own /proc CPU stays ~0, the tree's includes the child's
  const sh = spawn(
    'sh',
    [
      '-c',
      `${JSON.stringify(process.execPath)} -e "const t=Date.now();while(Date.now()-t<400);setTimeout(()=>{},3000)"; true`,
    ],
    {
      stdio: 'ignore',
    },
  );
  try {
    await new Promise((r) => setTimeout(r, 1200));
    const pids = procTreePids(sh.pid);
    const own = procCpuSeconds(sh.pid)!;
    const tree = treeCpuSeconds(sh.pid)!;
    const peak = treePeakRssGb(sh.pid)!;
    console.log(
      `tree ${JSON.stringify(pids)}: shell ${own.toFixed(2)} CPU-s, tree ${tree.toFixed(2)} CPU-s, peaks ${peak.toFixed(3)} GB`,
    );
    assert.equal(pids[0], sh.pid);
    assert.ok(pids.length >= 2, 'the node child is found under the shell');
    assert.ok(tree >= own + 0.3, `tree ${tree} CPU-s should include the child's busy ~0.4 s (shell alone ${own})`);
    assert.ok(peak > procPeakRssGb(sh.pid)! + 0.01, 'the child node process adds its resident memory');
  } finally {
    sh.kill('SIGKILL');
  }
  assert.deepEqual(procTreePids(2 ** 30), [], 'no such process');
});

test(
  'bench:recipe --bf16 on the CPU: medlora trains with a bf16 base (its resolved config says so), the ceiling is a bf16 matmul',
  { skip: !hasShared() && 'needs ../shared', timeout: 300_000 },
  () => {
    const dir = '/tmp/medlora-recipe';
    const r = spawnSync(
      process.execPath,
      [
        join(packageRoot(), 'dist', 'bench', 'recipe.js'),
        '--bf16',
        '--updates',
        '1',
        '--batch',
        '1',
        '--accum',
        '1',
        '--no-install',
        '--json',
      ],
      { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' }, timeout: 280_000 },
    );
    assert.equal(r.status, 0, r.stderr.slice(-2000));
    const res = JSON.parse(r.stdout) as {
      dtype: string;
      bf16: boolean;
      ceiling_matmul: string;
      ceiling_gflops: number;
    };
    assert.equal(res.dtype, 'bf16');
    assert.equal(res.bf16, true);
    assert.equal(res.ceiling_matmul, 'bf16 2048');
    assert.ok(res.ceiling_gflops > 0);
    assert.match(r.stderr, /^bench:recipe smollm2-135m bf16: /m);
    const cfg = JSON.parse(readFileSync(join(dir, 'medlora-run', 'config.resolved.json'), 'utf8')) as {
      training: { bf16: boolean; compute_dtype: string };
    };
    assert.equal(cfg.training.bf16, true);
    assert.equal(cfg.training.compute_dtype, 'bf16');
  },
);

// Data-parallel `medlora train` over c10d Gloo on 127.0.0.1: 2 ranks x per-device batch 1 against the reference
// fixture's batch-2 run (expected.json from HF/PEFT, and medlora's own 1-process run), a rank killed with SIGKILL or
// frozen (SIGSTOP) ends the job with a clear error within the timeout, a 2-rank run killed and resumed logs exactly
// what an uninterrupted one does, and the same job under python torch's real torchrun.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { assertClose, compareClose, type CloseReport } from '../../src/util/close.js';
import { distAvailable } from '../../src/tensor/dist.js';
import { referenceTraining, type ReferenceExpected } from '../train/reference-run.js';
import { freePort } from '../../src/train/distributed.js';

const BIN = join(packageRoot(), 'bin', 'medlora.js');
const REF = sharedPath('fixtures', 'reference', 'llama-tiny');
const skip = !hasShared()
  ? '../shared is not available'
  : !distAvailable().gloo
    ? 'the addon was built without c10d'
    : false;

interface Rec {
  step: number;
  loss?: number;
  learning_rate?: number;
  grad_norm?: number;
  eval_loss?: number;
  tokens_per_second?: number;
  tokens?: number;
}

/** A run folder: train.jsonl (the fixture batch's rows, plus `extra` shortened copies), cfg.yaml. */
function setup(training: Record<string, unknown>, extra = 0): { cfg: string; out: string; exp: ReferenceExpected } {
  const exp = JSON.parse(readFileSync(join(REF, 'expected.json'), 'utf8')) as ReferenceExpected;
  const batch = JSON.parse(readFileSync(join(REF, 'batch.json'), 'utf8')) as {
    input_ids: number[][];
    labels: number[][];
  };
  const dir = mkdtempSync(join(tmpdir(), 'medlora-dist-'));
  const rows = batch.input_ids.map((ids, i) => ({ input_ids: ids, labels: batch.labels[i]! }));
  // more rows of different lengths (so shards pad differently): prefixes of the batch's rows
  for (let k = 0; k < extra; k++) {
    const r = rows[k % 2]!;
    const n = r.input_ids.length - 1 - (k % 5);
    rows.push({ input_ids: r.input_ids.slice(0, n), labels: r.labels.slice(0, n) });
  }
  writeFileSync(join(dir, 'train.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const tr = referenceTraining(exp.train, 1, { save_steps: null, ...training });
  const out = join(dir, 'run');
  const cfg = join(dir, 'cfg.yaml');
  writeFileSync(
    cfg,
    [
      `model: ${REF}`,
      `data: { train: ${join(dir, 'train.jsonl')}, validation: ${join(dir, 'train.jsonl')} }`,
      `lora: { r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: [q_proj, v_proj], init_adapter: ${join(REF, 'adapter')} }`,
      `training: ${JSON.stringify(tr)}`,
      `output_dir: ${out}`,
      '',
    ].join('\n'),
  );
  return { cfg, out, exp };
}

function metrics(out: string): Rec[] {
  const f = join(out, 'metrics.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
}

function medlora(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stderr: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stderr: r.stderr, ms: Date.now() - t0 };
}

function trainRecs(out: string): Rec[] {
  return metrics(out).filter((r) => r.loss !== undefined);
}

/** Two runs that must be the same run, update by update: loss within 1e-5, grad norm within 1e-5 of its max-abs. */
function sameRun(a: Rec[], b: Rec[], label: string): { loss: CloseReport; gn: CloseReport } {
  return {
    loss: compareClose(
      a.map((x) => x.loss!),
      b.map((x) => x.loss!),
      { atol: 1e-5, label: `${label}: loss` },
    ),
    gn: compareClose(
      a.map((x) => x.grad_norm!),
      b.map((x) => x.grad_norm!),
      { rtolMaxAbs: 1e-5, label: `${label}: grad_norm` },
    ),
  };
}

test(
  '2 ranks x batch 1 reproduce the batch-2 run of llama-tiny (expected.json and medlora 1-process) for 12 steps',
  { skip },
  () => {
    const two = setup({});
    const r2 = medlora([
      'train',
      '--config',
      two.cfg,
      '--threads',
      '1',
      '--quiet',
      '--nproc-per-node',
      '2',
      '--dist-timeout',
      '60',
    ]);
    assert.equal(r2.status, 0, r2.stderr);
    const one = setup({ per_device_train_batch_size: 2 });
    const r1 = medlora(['train', '--config', one.cfg, '--threads', '1', '--quiet']);
    assert.equal(r1.status, 0, r1.stderr);
    const a = trainRecs(two.out),
      b = trainRecs(one.out),
      exp = two.exp;
    assert.deepEqual(
      a.map((x) => x.step),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      a.map((x) => x.tokens),
      b.map((x) => x.tokens),
      'each update counts the tokens of both ranks',
    );
    // the reference README's F32 tolerances (as test/train/reference.test.ts): loss 1e-3, grad norm 1e-4 of max-abs
    assertClose(
      a.map((x) => x.loss!),
      exp.train_loss,
      { atol: 1e-3, label: '2-rank train_loss vs expected.json' },
    );
    assertClose(
      a.map((x) => x.learning_rate!),
      exp.learning_rate,
      { atol: 1e-12, label: '2-rank learning_rate vs expected.json' },
    );
    assertClose(
      a.map((x) => x.grad_norm!),
      exp.grad_norm,
      { rtolMaxAbs: 1e-4, label: '2-rank grad_norm vs expected.json' },
    );
    const { loss, gn } = sameRun(a, b, '2-rank vs 1-process');
    const ex = compareClose(
      a.map((x) => x.loss!),
      exp.train_loss,
      { atol: 1e-3 },
    );
    console.log(
      `  max |loss diff|: vs 1-process ${loss.maxAbsDiff.toExponential(2)}, vs expected.json ${ex.maxAbsDiff.toExponential(2)}; ` +
        `max |grad_norm diff| vs 1-process ${gn.maxAbsDiff.toExponential(2)}`,
    );
    assert.ok(loss.ok, loss.message);
    assert.ok(gn.ok, gn.message);
    // the checker can fail: a 1-rank batch-1 run (half the batch) is outside the tolerance
    const half = compareClose(
      a.map((x) => x.loss!).map((v, i) => (i === 2 ? v + 2e-3 : v)),
      exp.train_loss,
      { atol: 1e-3 },
    );
    assert.equal(half.ok, false);
    // rank 0 alone wrote the outputs
    assert.ok(
      existsSync(join(two.out, 'adapter', 'adapter_model.safetensors')) && existsSync(join(two.out, 'report.html')),
    );
  },
);

test(
  'one rank per core keeps the update: 2 ranks x accumulation 2 == 1 process x accumulation 4 (batch 1, 8 rows of mixed lengths)',
  { skip },
  () => {
    // the CPU recipe of docs/DISTRIBUTED.md: --nproc-per-node 2 with the accumulation halved takes the same rows per
    // update, and the loss is normalised over the update's tokens on both ranks, so the run is the one-process run
    const steps = { per_device_train_batch_size: 1, max_steps: 3 };
    const two = setup({ ...steps, gradient_accumulation_steps: 2 }, 6);
    const r2 = medlora(['train', '--config', two.cfg, '--threads', '1', '--quiet', '--nproc-per-node', '2']);
    assert.equal(r2.status, 0, r2.stderr);
    const one = setup({ ...steps, gradient_accumulation_steps: 4 }, 6);
    const r1 = medlora(['train', '--config', one.cfg, '--threads', '1', '--quiet']);
    assert.equal(r1.status, 0, r1.stderr);
    const half = setup({ ...steps, gradient_accumulation_steps: 2 }, 6);
    const rh = medlora(['train', '--config', half.cfg, '--threads', '1', '--quiet']);
    assert.equal(rh.status, 0, rh.stderr);
    const a = trainRecs(two.out),
      b = trainRecs(one.out),
      h = trainRecs(half.out);
    assert.equal(a.length, 3);
    assert.deepEqual(
      a.map((x) => x.tokens),
      b.map((x) => x.tokens),
      'the same rows (tokens) in every update',
    );
    const { loss, gn } = sameRun(a, b, '2 ranks x accumulation 2 vs 1 process x accumulation 4');
    // the checker can fail: one process with accumulation 2 (half the update) is not the same run
    const other = sameRun(h, b, '1 process x accumulation 2 vs 4').gn;
    console.log(
      `  max |loss diff| ${loss.maxAbsDiff.toExponential(2)}, max |grad_norm diff| ${gn.maxAbsDiff.toExponential(2)}; ` +
        `1 process x accumulation 2 vs 4: max |grad_norm diff| ${other.maxAbsDiff.toExponential(2)}`,
    );
    assert.ok(loss.ok, loss.message);
    assert.ok(gn.ok, gn.message);
    assert.equal(other.ok, false, 'half the update must fall outside the tolerance');
  },
);

/** Two ranks started by hand with torchrun's variables (so the test can signal one of them). */
async function twoRanks(cfg: string, extra: string[]): Promise<ChildProcess[]> {
  const port = await freePort();
  return [0, 1].map((r) =>
    spawn(process.execPath, [BIN, 'train', '--config', cfg, '--threads', '1', '--quiet', ...extra], {
      env: {
        ...process.env,
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        RANK: String(r),
        WORLD_SIZE: '2',
        LOCAL_RANK: String(r),
        LOCAL_WORLD_SIZE: '2',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
}

async function stderrAndExit(
  c: ChildProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; at: number }> {
  let stderr = '';
  c.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((res) => c.on('exit', (code, signal) => res({ code, signal, stderr, at: Date.now() })));
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const how of ['SIGKILL', 'SIGSTOP'] as const) {
  test(`${how} of rank 1: rank 0 stops with a clear error within the collective timeout`, { skip }, async () => {
    const timeoutS = 6;
    const s = setup({ max_steps: 5000 });
    const ranks = await twoRanks(s.cfg, ['--dist-timeout', String(timeoutS)]);
    const done = ranks.map(stderrAndExit);
    try {
      await waitFor(() => trainRecs(s.out).length >= 3, 60_000);
      const killedAt = Date.now();
      ranks[1]!.kill(how);
      const r0 = await done[0]!;
      const took = (r0.at - killedAt) / 1000;
      console.log(
        `  rank 0 exited ${took.toFixed(2)} s after ${how} of rank 1 with: ${r0.stderr.trim().split('\n').pop()}`,
      );
      assert.equal(r0.code, 1);
      assert.match(r0.stderr, /data-parallel job failed at .* on rank 0 of 2: another rank stopped/);
      assert.ok(took < timeoutS + 5, `took ${took} s`);
      if (how === 'SIGSTOP')
        assert.ok(took >= timeoutS - 1, `a frozen rank is only detected by the timeout (took ${took} s)`);
    } finally {
      ranks[1]!.kill('SIGKILL');
      ranks[0]!.kill('SIGKILL');
      await Promise.all(done);
    }
  });
}

test(
  'a 2-rank run killed (SIGKILL) and resumed from its checkpoint logs exactly what an uninterrupted 2-rank run logs',
  { skip },
  async () => {
    const training = { max_steps: 24, save_steps: 4, shuffle: true, eval_steps: 5 };
    const a = setup(training, 5);
    const full = medlora(['train', '--config', a.cfg, '--threads', '1', '--quiet', '--nproc-per-node', '2']);
    assert.equal(full.status, 0, full.stderr);
    const b = setup(training, 5);
    const launcher = spawn(
      process.execPath,
      [BIN, 'train', '--config', b.cfg, '--threads', '1', '--quiet', '--nproc-per-node', '2'],
      { stdio: 'ignore', detached: true },
    );
    const exited = new Promise((res) => launcher.on('exit', res));
    await waitFor(() => trainRecs(b.out).length >= 10, 60_000);
    process.kill(-launcher.pid!, 'SIGKILL'); // the launcher and both ranks
    await exited;
    const cks = readdirSync(b.out).filter((n) => n.startsWith('checkpoint-'));
    console.log(`  killed after ${trainRecs(b.out).length} updates; checkpoints: ${cks.join(', ')}`);
    assert.ok(cks.length > 0 && trainRecs(b.out).length < 24);
    const res = medlora([
      'train',
      '--config',
      b.cfg,
      '--threads',
      '1',
      '--quiet',
      '--nproc-per-node',
      '2',
      '--resume',
      'latest',
    ]);
    assert.equal(res.status, 0, res.stderr);
    const strip = (rs: Rec[]): Rec[] => rs.map((r) => ({ ...r, tokens_per_second: 0 }));
    assert.deepEqual(strip(metrics(b.out)), strip(metrics(a.out)));
    // resuming with another number of ranks would change the global batch: refused
    const other = medlora(['train', '--config', b.cfg, '--threads', '1', '--quiet', '--resume', 'latest']);
    assert.equal(other.status, 1);
    assert.match(other.stderr, /world_size was 2 in that run/);
  },
);

/** python torch's launcher: /tmp/v/bin/torchrun, else `python3 -m torch.distributed.run` when python3 has torch. */
function torchrun(): string[] | null {
  if (existsSync('/tmp/v/bin/torchrun')) return ['/tmp/v/bin/torchrun'];
  for (const py of ['python3', '/tmp/v/bin/python']) {
    const r = spawnSync(py, ['-c', 'import torch.distributed.run'], { stdio: 'ignore' });
    if (r.status === 0) return [py, '-m', 'torch.distributed.run'];
  }
  return null;
}

test(
  "under python torch's torchrun (--no-python node bin/medlora.js train): the same metrics as --nproc-per-node",
  { skip: skip || (torchrun() ? false : 'no torchrun') },
  async () => {
    const tr = torchrun()!;
    const training = { max_steps: 6 };
    const a = setup(training);
    const viaFlag = medlora(['train', '--config', a.cfg, '--threads', '1', '--quiet', '--nproc-per-node', '2']);
    assert.equal(viaFlag.status, 0, viaFlag.stderr);
    const b = setup(training);
    const port = await freePort();
    const r = spawnSync(
      tr[0]!,
      [
        ...tr.slice(1),
        '--nproc-per-node',
        '2',
        '--master-addr',
        '127.0.0.1',
        '--master-port',
        String(port),
        '--no-python',
        process.execPath,
        BIN,
        'train',
        '--config',
        b.cfg,
        '--threads',
        '1',
        '--quiet',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const strip = (rs: Rec[]): Rec[] => rs.map((x) => ({ ...x, tokens_per_second: 0 }));
    assert.deepEqual(strip(metrics(b.out)), strip(metrics(a.out)));
    assert.equal(trainRecs(b.out).length, 6);
  },
);

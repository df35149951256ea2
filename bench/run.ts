// `npm run bench`: medlora's LoRA training step against Hugging Face transformers + PEFT, side by side in one run.
// Each configuration runs in its own process (medlora: dist/bench/train.js; reference: ../shared/bench/hf_peft_bench.py
// with identical arguments), medlora and reference interleaved and repeated, then one table: tok/s, spread, ratio.
// The reference Python (torch + transformers + peft) is found or created on demand in /tmp/medlora-bench-venv.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { matmulRate, physicalCores, REFERENCE_GFLOPS, engineInfo, setNumThreads } from '../src/tensor/index.js';
import { sharedPath } from '../src/util/paths.js';
import { Progress } from '../src/util/progress.js';
import { MedloraError } from '../src/util/errors.js';
import { runIfMain } from './entry.js';
import { schemaBench } from './constraints.js';
import { parseArgs, benchDtype, type TrainBenchResult } from './train.js';

const here = dirname(fileURLToPath(import.meta.url));
export const VENV = process.env.MEDLORA_BENCH_VENV ?? '/tmp/medlora-bench-venv';

export interface BenchConfig {
  config: string;
  batch: number;
  seq: number;
  dtype: 'bf16' | 'fp32';
  ckpt: 0 | 1;
}

/** The default set (README's anchors): smollm2-135m bf16 2x400 without and with checkpointing; --big adds the 1B. */
export const DEFAULT_CONFIGS: BenchConfig[] = [
  { config: 'smollm2-135m', batch: 2, seq: 400, dtype: 'bf16', ckpt: 0 },
  { config: 'smollm2-135m', batch: 2, seq: 400, dtype: 'bf16', ckpt: 1 },
];
export const BIG_CONFIG: BenchConfig = { config: 'llama-3.2-1b', batch: 1, seq: 400, dtype: 'bf16', ckpt: 1 };

export function configLabel(c: BenchConfig): string {
  return `${c.config} ${c.dtype} ${c.batch}x${c.seq} ckpt=${c.ckpt}`;
}

// ---------------------------------------------------------------------------------------------------------------
// the reference Python

function pythonHasStack(py: string): string | undefined {
  const r = spawnSync(
    py,
    ['-c', 'import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * A Python with torch + transformers + peft: $MEDLORA_BENCH_PYTHON, the bench venv, python3 itself, or (unless
 * `create` is false) a new venv installed with pip (offline from this image's wheel store). Undefined with a reason.
 */
export function findReferencePython(
  create: boolean,
  say: (s: string) => void,
): { python?: string; versions?: string; reason?: string } {
  const cands = [process.env.MEDLORA_BENCH_PYTHON, join(VENV, 'bin', 'python'), 'python3'].filter((p): p is string =>
    Boolean(p),
  );
  for (const py of cands) {
    if (py.includes('/') && !existsSync(py)) continue;
    const v = pythonHasStack(py);
    if (v) return { python: py, versions: v };
  }
  if (!create) return { reason: 'no Python with torch + transformers + peft (and --no-install given)' };
  say(`reference: creating ${VENV} (python3 -m venv, pip install torch transformers peft; a few minutes, once) ...`);
  const mk = spawnSync('python3', ['-m', 'venv', VENV], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (mk.status !== 0)
    return { reason: `python3 -m venv ${VENV} failed: ${(mk.stderr ?? String(mk.error)).trim().split('\n').pop()}` };
  const pip = spawnSync(join(VENV, 'bin', 'pip'), ['install', '--quiet', 'torch', 'transformers', 'peft'], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 1_800_000,
  });
  if (pip.status !== 0)
    return {
      reason: `pip install torch transformers peft failed: ${(pip.stderr ?? String(pip.error)).trim().split('\n').pop()}`,
    };
  const py = join(VENV, 'bin', 'python');
  const v = pythonHasStack(py);
  return v
    ? { python: py, versions: v }
    : { reason: `${py} still cannot import torch, transformers and peft after pip install` };
}

// ---------------------------------------------------------------------------------------------------------------
// one measurement = one child process

export interface Sample {
  engine: 'medlora' | 'hf-peft';
  label: string;
  step_s: number;
  tok_per_s: number;
  load1: number;
  detail: Record<string, unknown>;
}

function lastJsonLine(out: string): Record<string, unknown> | undefined {
  const lines = out.trim().split('\n').reverse();
  for (const l of lines) {
    if (!l.startsWith('{')) continue;
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      /* not ours */
    }
  }
  return undefined;
}

function runChild(cmd: string, args: string[], what: string, timeoutS: number): Record<string, unknown> {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: timeoutS * 1000,
    maxBuffer: 64 << 20,
  });
  if (r.error) throw new MedloraError(`${what}: ${r.error.message}`);
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' | ');
    throw new MedloraError(`${what} exited with ${r.status ?? r.signal}: ${tail}`);
  }
  const j = lastJsonLine(r.stdout);
  if (!j || typeof j.step_s !== 'number')
    throw new MedloraError(`${what}: no JSON result line with step_s in its output`);
  return j;
}

/** The arguments both trainers take (bench/train.ts and the reference hf_peft_bench.py share their names). */
function runArgs(c: BenchConfig, steps: number, threads: number): string[] {
  return [
    ...['--config', c.config, '--batch', String(c.batch), '--seq', String(c.seq), '--dtype', c.dtype],
    ...['--ckpt', String(c.ckpt), '--steps', String(steps), '--threads', String(threads)],
  ];
}

export function medloraSample(c: BenchConfig, steps: number, threads: number): Sample {
  const load1 = loadavg()[0]!;
  const j = runChild(
    process.execPath,
    [join(here, 'train.js'), '--json', ...runArgs(c, steps, threads)],
    `medlora ${configLabel(c)}`,
    1800,
  );
  const r = j as unknown as TrainBenchResult;
  return { engine: 'medlora', label: configLabel(c), step_s: r.step_s, tok_per_s: r.tok_per_s, load1, detail: j };
}

export function referenceSample(python: string, c: BenchConfig, steps: number, threads: number): Sample {
  const load1 = loadavg()[0]!;
  const script = sharedPath('bench', 'hf_peft_bench.py');
  if (!existsSync(script)) throw new MedloraError(`reference script ${script} is missing`);
  const j = runChild(python, [script, ...runArgs(c, steps, threads)], `hf_peft_bench.py ${configLabel(c)}`, 1800);
  return {
    engine: 'hf-peft',
    label: configLabel(c),
    step_s: j.step_s as number,
    tok_per_s: j.tok_per_s as number,
    load1,
    detail: j,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// summary

export interface Row {
  label: string;
  medlora: number[];
  reference: number[];
  /** best medlora tok/s over best reference tok/s (best-of: the least disturbed run of each) */
  ratio: number | null;
  phases?: { forward_s: number; backward_s: number; optim_s: number };
}

export function summarise(configs: BenchConfig[], samples: Sample[]): Row[] {
  return configs.map((c) => {
    const label = configLabel(c);
    const m = samples.filter((s) => s.label === label && s.engine === 'medlora');
    const r = samples.filter((s) => s.label === label && s.engine === 'hf-peft');
    const bm = m.length ? Math.max(...m.map((s) => s.tok_per_s)) : NaN;
    const br = r.length ? Math.max(...r.map((s) => s.tok_per_s)) : NaN;
    const bestM = m.find((s) => s.tok_per_s === bm);
    const row: Row = {
      label,
      medlora: m.map((s) => s.tok_per_s),
      reference: r.map((s) => s.tok_per_s),
      ratio: m.length && r.length ? Math.round((100 * bm) / br) / 100 : null,
    };
    if (bestM) row.phases = (bestM.detail as unknown as TrainBenchResult).phases;
    return row;
  });
}

function spread(xs: number[]): string {
  if (!xs.length) return '-';
  const best = Math.max(...xs);
  return xs.length === 1
    ? `${best.toFixed(0)}`
    : `**${best.toFixed(0)}** (${Math.min(...xs).toFixed(0)}-${best.toFixed(0)}, n=${xs.length})`;
}

export function renderTable(rows: Row[]): string {
  const out = [
    '| configuration | medlora tok/s | HF+PEFT tok/s | ratio (best/best) | medlora fwd / bwd / optim s |',
    '|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const ph = r.phases
      ? `${r.phases.forward_s.toFixed(2)} / ${r.phases.backward_s.toFixed(2)} / ${r.phases.optim_s.toFixed(3)}`
      : '-';
    out.push(
      `| ${r.label} | ${spread(r.medlora)} | ${spread(r.reference)} | ${r.ratio === null ? '-' : `${r.ratio.toFixed(2)}x`} | ${ph} |`,
    );
  }
  return out.join('\n');
}

/** The engine bench's matmul line: bf16 and f32 at 2048 against the torch ceilings of shared/bench/README.md. */
function ceilingLine(threads: number): { text: string; data: Record<string, number> } {
  setNumThreads(threads);
  const bf = matmulRate(2048, 'bf16', 0.5).gflops;
  const f = matmulRate(2048, 'f32', 0.5).gflops;
  const rb = REFERENCE_GFLOPS['bf16@2048']!,
    rf = REFERENCE_GFLOPS['f32@2048']!;
  return {
    text:
      `matmul ceiling (engine, ${threads} threads): bf16 2048 ${(bf / 1000).toFixed(2)} TFLOP/s (${((100 * bf) / rb).toFixed(0)}% of torch's ${(rb / 1000).toFixed(1)}), ` +
      `f32 2048 ${f.toFixed(0)} GFLOP/s (${((100 * f) / rf).toFixed(0)}% of ${rf})`,
    data: { bf16_2048_gflops: Math.round(bf), f32_2048_gflops: Math.round(f) },
  };
}

function main(): void {
  const a = parseArgs(process.argv.slice(2), {
    json: 'flag',
    big: 'flag',
    'no-ref': 'flag',
    'no-install': 'flag',
    reps: 'number',
    steps: 'number',
    threads: 'number',
    config: 'string',
    batch: 'number',
    seq: 'number',
    dtype: 'string',
    ckpt: 'number',
  });
  const json = Boolean(a.json);
  const say = (s: string): void => {
    if (!json) console.log(s);
    else console.error(s);
  };
  const reps = (a.reps as number | undefined) ?? 2;
  const steps = (a.steps as number | undefined) ?? 3;
  const threads = (a.threads as number | undefined) ?? 2;
  if (!(Number.isInteger(reps) && reps >= 1))
    throw new MedloraError(`bench: --reps must be a positive integer, got ${reps}`);
  let configs: BenchConfig[];
  if (a.config !== undefined) {
    const ck = (a.ckpt as number | undefined) ?? 0;
    if (ck !== 0 && ck !== 1) throw new MedloraError(`bench: --ckpt must be 0 or 1, got ${ck}`);
    configs = [
      {
        config: a.config as string,
        batch: (a.batch as number | undefined) ?? 2,
        seq: (a.seq as number | undefined) ?? 400,
        dtype: benchDtype((a.dtype as string | undefined) ?? 'bf16') === 'f32' ? 'fp32' : 'bf16',
        ckpt: ck,
      },
    ];
  } else {
    configs = [...DEFAULT_CONFIGS, ...(a.big ? [BIG_CONFIG] : [])];
  }

  const info = engineInfo();
  say(
    `medlora training bench: libtorch ${info.fullVersion ?? info.torchVersion}, ${threads} threads, ${reps} rep(s) x ${steps} timed steps (+1 warm-up) per run`,
  );
  const ceiling = ceilingLine(threads);
  say(ceiling.text);
  const cores = physicalCores();
  if (loadavg()[0]! > cores)
    say(
      `warning: the machine is busy (1-min load ${loadavg()[0]!.toFixed(1)} on ${cores} cores); absolute figures will be low and noisy, ratios less so (runs are interleaved)`,
    );

  let python: string | undefined;
  let refNote: string | undefined;
  if (a['no-ref']) refNote = 'reference skipped (--no-ref)';
  else {
    const f = findReferencePython(!a['no-install'], say);
    python = f.python;
    refNote = f.python
      ? `reference: ${f.python} (torch, transformers, peft ${f.versions})`
      : `reference skipped: ${f.reason}`;
  }
  say(refNote);

  const samples: Sample[] = [];
  const total = reps * configs.length * (python ? 2 : 1);
  const bar = new Progress({ total, label: 'bench', json: false, quiet: json });
  for (let rep = 0; rep < reps; rep++) {
    for (const c of configs) {
      // alternate which engine goes first, so a slow patch of machine time does not always hit the same one
      const order: Array<'medlora' | 'hf-peft'> = python
        ? rep % 2 === 0
          ? ['medlora', 'hf-peft']
          : ['hf-peft', 'medlora']
        : ['medlora'];
      for (const e of order) {
        const s = e === 'medlora' ? medloraSample(c, steps, threads) : referenceSample(python!, c, steps, threads);
        samples.push(s);
        bar.tick(1, { [e]: `${configLabel(c)} ${s.tok_per_s} tok/s` });
        // each result as it lands (stderr), so an interrupted run still leaves its measurements
        console.error(
          `sample ${JSON.stringify({ rep, engine: e, config: s.label, step_s: s.step_s, tok_per_s: s.tok_per_s, load1: Math.round(s.load1 * 10) / 10 })}`,
        );
      }
    }
  }
  bar.end();
  const rows = summarise(configs, samples);
  if (json) {
    console.log(
      JSON.stringify({
        libtorch: info.fullVersion ?? info.torchVersion,
        threads,
        reps,
        steps,
        ceiling: ceiling.data,
        reference: refNote,
        rows,
        samples,
      }),
    );
    return;
  }
  say('');
  say(renderTable(rows));
  say('');
  say(
    'tok/s: best run (spread over runs); each run is the best of its timed steps. Load during runs (1-min avg): ' +
      samples.map((s) => s.load1.toFixed(1)).join(', '),
  );
  say('');
  // constrained decoding: per-token mask cost of the JSON-schema constraint on 128k and 32k vocabularies
  if (existsSync(sharedPath('fixtures', 'hf', 'Meta-Llama-3-8B-Instruct'))) schemaBench(10, undefined, say);
  else say('schema constraint bench skipped: needs ../shared/fixtures/hf/Meta-Llama-3-8B-Instruct');
}

runIfMain(import.meta.url, main);

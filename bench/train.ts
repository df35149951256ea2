// `npm run bench:train`: medlora's LoRA training step at the shapes and settings of ../shared/bench/hf_peft_bench.py
// (random weights, public shapes, LoRA r=8 alpha=16 dropout 0.05 on q,k,v,o,gate,up,down,lm_head, f32 adapters over a
// bf16 base, torch AdamW lr 2.5e-5, optional gradient checkpointing). Prints step_s (best of the timed steps after one
// warm-up, as the reference does), tok/s and the time per phase; --profile adds per-op call counts from JS.
// --device cuda (or cuda:N; default cpu) builds the model on the CPU as always, moves it there, ends each phase with
// cudaSynchronize so that the phase times are the device's work, and reports the caching allocator's peaks.
import {
  AdamW,
  keep,
  manualSeed,
  noGrad,
  randint,
  reuseLargeBlocks,
  scope,
  setNumThreads,
  getNumThreads,
  engineInfo,
  tensor,
  cudaIndex,
  cudaMemoryStats,
  cudaResetPeakMemoryStats,
  cudaSynchronize,
  resolveDevice,
  type Device,
  type Tensor,
} from '../src/tensor/index.js';
import { N } from '../src/tensor/native.js';
import { initModel } from '../src/model/init.js';
import { declaredParameters } from '../src/model/layers.js';
import { causalLmLoss, IGNORE_INDEX } from '../src/model/loss.js';
import { applyLora } from '../src/adapt/apply.js';
import { labelledPositions, summedTokenLoss } from '../src/train/loss.js';
import { MedloraError } from '../src/util/errors.js';
import { runIfMain } from './entry.js';
import type { LoadedModel } from '../src/model/registry.js';

/** config.json shapes, as in hf_peft_bench.py's SHAPES (untied heads there too). */
export const SHAPES: Readonly<Record<string, Record<string, unknown>>> = {
  'smollm2-135m': {
    vocab_size: 49152,
    hidden_size: 576,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    intermediate_size: 1536,
    rope_theta: 100000.0,
    tie_word_embeddings: false,
  },
  'llama-3.2-1b': {
    vocab_size: 128256,
    hidden_size: 2048,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    intermediate_size: 8192,
    rope_theta: 500000.0,
    tie_word_embeddings: false,
  },
};

/** hf_peft_bench.py's LoraConfig. */
export const LORA = {
  r: 8,
  lora_alpha: 16,
  lora_dropout: 0.05,
  target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
};

export interface TrainBenchOptions {
  config: string;
  batch: number;
  seq: number;
  dtype: 'bf16' | 'f32';
  ckpt: boolean;
  /** timed steps after one warm-up step */
  steps: number;
  threads: number;
  /** count native calls per phase (adds JS overhead to the timings: report them separately) */
  profile?: boolean;
  /** where the step computes (default cpu) */
  device?: Device;
}

export interface PhaseTimes {
  forward_s: number;
  backward_s: number;
  optim_s: number;
}

export interface TrainBenchResult {
  engine: string;
  config: string;
  batch: number;
  seq: number;
  dtype: string;
  ckpt: number;
  threads: number;
  /** only when not the CPU (the CPU result stays as it was) */
  device?: Device;
  /** on a CUDA device: the caching allocator's peaks over the timed steps, GB (torch.cuda.max_memory_allocated / reserved) */
  peak_device_allocated_gb?: number;
  peak_device_reserved_gb?: number;
  /** best timed step */
  step_s: number;
  tok_per_s: number;
  /** every step including the warm-up (first) */
  steps_s: number[];
  /** process CPU seconds (user + system, all threads) of the best step: less sensitive to a busy machine */
  cpu_s: number;
  /** phases of the best step */
  phases: PhaseTimes;
  setup_s: number;
  trainable: number;
  /** with --profile: native calls per phase, most frequent first */
  ops?: Record<keyof PhaseTimes, Array<[string, number]>>;
}

// ---------------------------------------------------------------------------------------------------------------
// op counting: wraps every export of the native module (the engine is only reachable through it)

let counts: Map<string, number> | undefined;
let wrapped = false;

export function wrapNative(): void {
  if (wrapped) return;
  wrapped = true;
  for (const [name, fn] of Object.entries(N)) {
    if (typeof fn !== 'function') continue;
    N[name] = (...args: unknown[]) => {
      if (counts) counts.set(name, (counts.get(name) ?? 0) + 1);
      return fn(...args);
    };
  }
}

function counted<T>(into: Map<string, number>, fn: () => T): T {
  counts = into;
  try {
    return fn();
  } finally {
    counts = undefined;
  }
}

function sortedCounts(m: Map<string, number>): Array<[string, number]> {
  return [...m].sort((a, b) => b[1] - a[1]);
}

// ---------------------------------------------------------------------------------------------------------------

/** A model ready to train at the bench's settings, with its optimizer and one fixed batch. */
export interface BenchSetup {
  model: LoadedModel;
  opt: AdamW;
  ids: Tensor;
  labels: Tensor;
  /** the scored positions of `labels` and their targets (what the trainer computes per micro-batch) */
  scored: { positions: Tensor; targets: Tensor; count: number };
  trainable: number;
  setup_s: number;
  /** the CUDA device index, undefined on the CPU */
  cuda?: number;
  /** on a CUDA device: waits until it has done everything asked so far (a no-op on the CPU) */
  sync: () => void;
  dispose(): void;
}

/** Build the model (random weights in `dtype`), wrap it in LoRA, make the optimizer and the batch. */
export function setupBench(o: TrainBenchOptions): BenchSetup {
  const shape = SHAPES[o.config];
  if (!shape)
    throw new MedloraError(
      `bench:train: unknown --config ${JSON.stringify(o.config)} (known: ${Object.keys(SHAPES).join(', ')})`,
    );
  if (!(o.batch >= 1 && o.seq >= 2 && o.steps >= 1))
    throw new MedloraError('bench:train: --batch >= 1, --seq >= 2 and --steps >= 1 are required');
  setNumThreads(o.threads);
  const t0 = performance.now();
  const device = o.device ?? 'cpu';
  const model = initModel({ model_type: 'llama', ...shape }, { seed: 0 });
  if (o.dtype !== 'f32' || device !== 'cpu') {
    // the reference builds in f32 and calls .to(bf16) on the whole model (and .to(device))
    noGrad(() => {
      for (const [, { module, name }] of declaredParameters(model)) {
        const p = module.ownParameters().find(([n]) => n === name)![1];
        module.setParam(name, keep(scope(() => p.to({ dtype: o.dtype, device }))));
      }
    });
  }
  applyLora(model, { ...LORA });
  model.gradientCheckpointing = o.ckpt;
  model.train(true);
  const params = model.trainableParameters().map(([, p]) => p);
  const trainable = params.reduce((a, p) => a + p.numel, 0);
  const opt = new AdamW(params); // torch.optim.AdamW defaults (weight decay 0.01), lr below
  manualSeed(0);
  const V = shape.vocab_size as number;
  // the same ids on every device: drawn on the CPU, then moved
  const ids = keep(
    device === 'cpu'
      ? randint(0, V, [o.batch, o.seq], { dtype: 'i64' })
      : scope(() => randint(0, V, [o.batch, o.seq], { dtype: 'i64' }).to(device)),
  );
  // labels = ids with the first half masked, as the reference
  const labels = keep(
    scope(() => {
      const l = ids.clone();
      noGrad(() => l.narrow(1, 0, Math.floor(o.seq / 2)).fill_(IGNORE_INDEX));
      return l;
    }),
  );
  const flat = labels.toNumbers();
  const { positions, targets } = labelledPositions(
    Array.from({ length: o.batch }, (_, r) => flat.slice(r * o.seq, (r + 1) * o.seq)),
  );
  const scored = {
    positions: keep(tensor(positions, { dtype: 'i64', device })),
    targets: keep(tensor(targets, { dtype: 'i64', device })),
    count: targets.length,
  };
  const cuda = cudaIndex(device);
  return {
    model,
    opt,
    ids,
    labels,
    scored,
    trainable,
    setup_s: (performance.now() - t0) / 1000,
    cuda,
    sync: () => {
      if (cuda !== undefined) cudaSynchronize(cuda);
    },
    dispose: () => {
      ids.dispose();
      labels.dispose();
      scored.positions.dispose();
      scored.targets.dispose();
      model.dispose();
    },
  };
}

/** Forward + mean token loss of the bench batch. */
export type LossFn = (b: BenchSetup) => Tensor;
/** What `medlora train` does (src/train/trainer.ts): logits only at scored positions, summed loss / tokens. */
export const defaultLoss: LossFn = (b) =>
  summedTokenLoss(b.model.forward(b.ids, { outputPositions: b.scored.positions }), b.scored.targets).div(
    b.scored.count,
  );
/** The reference's way: logits at every position, then the shifted loss (src/model/loss.ts). */
export const fullLogitsLoss: LossFn = (b) => causalLmLoss(b.model.forward(b.ids), b.labels).loss;

export interface StepTimes extends PhaseTimes {
  step_s: number;
  cpu_s: number;
}

/** One training step (forward + loss, backward, AdamW step + zero_grad), timed per phase; `ops` counts native calls. */
export function timedStep(
  b: BenchSetup,
  loss: LossFn = defaultLoss,
  ops?: Record<keyof PhaseTimes, Map<string, number>>,
): StepTimes {
  const run = <T>(m: Map<string, number> | undefined, f: () => T): T => (m ? counted(m, f) : f());
  const cpu0 = process.cpuUsage();
  const a = performance.now();
  return scope(() => {
    const l = run(ops?.forward_s, () => loss(b));
    b.sync();
    const t1 = performance.now();
    run(ops?.backward_s, () => l.backward());
    b.sync();
    const t2 = performance.now();
    run(ops?.optim_s, () => {
      b.opt.step(2.5e-5);
      b.opt.zeroGrad();
    });
    b.sync();
    const t3 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    return {
      step_s: (t3 - a) / 1000,
      forward_s: (t1 - a) / 1000,
      backward_s: (t2 - t1) / 1000,
      optim_s: (t3 - t2) / 1000,
      cpu_s: (cpu.user + cpu.system) / 1e6,
    };
  });
}

/** Build, then time `steps` + 1 training steps (the first is the warm-up, as in the reference). */
export function runTrainBench(o: TrainBenchOptions): TrainBenchResult {
  if (o.profile) wrapNative();
  const b = setupBench(o);
  const steps: StepTimes[] = [];
  const ops = {
    forward_s: new Map<string, number>(),
    backward_s: new Map<string, number>(),
    optim_s: new Map<string, number>(),
  };
  // as the trainer's loop does (src/train/trainer.ts)
  const releaseBlocks = reuseLargeBlocks();
  let mem: { allocated: number; reserved: number } | undefined;
  try {
    if (b.cuda !== undefined) cudaResetPeakMemoryStats(b.cuda);
    // count ops on the last step only (all steps make the same calls)
    for (let i = 0; i <= o.steps; i++)
      steps.push(timedStep(b, defaultLoss, o.profile && i === o.steps ? ops : undefined));
    if (b.cuda !== undefined) {
      const m = cudaMemoryStats(b.cuda);
      mem = { allocated: m.peakAllocated, reserved: m.peakReserved };
    }
  } finally {
    releaseBlocks();
    b.dispose();
  }
  const timed = steps.slice(1);
  const best = timed.reduce((x, y) => (y.step_s < x.step_s ? y : x));
  const info = engineInfo();
  const r: TrainBenchResult = {
    engine: `medlora libtorch ${info.fullVersion ?? info.torchVersion}`,
    config: o.config,
    batch: o.batch,
    seq: o.seq,
    dtype: o.dtype === 'f32' ? 'fp32' : o.dtype,
    ckpt: o.ckpt ? 1 : 0,
    threads: getNumThreads(),
    ...(o.device && o.device !== 'cpu' ? { device: o.device } : {}),
    ...(mem
      ? { peak_device_allocated_gb: round(mem.allocated / 1e9), peak_device_reserved_gb: round(mem.reserved / 1e9) }
      : {}),
    step_s: round(best.step_s),
    tok_per_s: Math.round((10 * o.batch * o.seq) / best.step_s) / 10,
    steps_s: steps.map((s) => round(s.step_s)),
    cpu_s: round(best.cpu_s),
    phases: { forward_s: round(best.forward_s), backward_s: round(best.backward_s), optim_s: round(best.optim_s) },
    setup_s: round(b.setup_s),
    trainable: b.trainable,
  };
  if (o.profile)
    r.ops = {
      forward_s: sortedCounts(ops.forward_s),
      backward_s: sortedCounts(ops.backward_s),
      optim_s: sortedCounts(ops.optim_s),
    };
  return r;
}

export function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

// ---------------------------------------------------------------------------------------------------------------
// command line (shared with run.ts)

/** --name value / --name=value / --flag; unknown options are errors naming the option. */
export function parseArgs(
  argv: string[],
  spec: Record<string, 'string' | 'number' | 'flag'>,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new MedloraError(`bench: unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    const kind = spec[name];
    if (!kind)
      throw new MedloraError(
        `bench: unknown option --${name} (known: ${Object.keys(spec)
          .map((k) => `--${k}`)
          .join(', ')})`,
      );
    if (kind === 'flag') {
      out[name] = true;
      continue;
    }
    const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined) throw new MedloraError(`bench: --${name} needs a value`);
    if (kind === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new MedloraError(`bench: --${name} must be a number, got ${JSON.stringify(v)}`);
      out[name] = n;
    } else out[name] = v;
  }
  return out;
}

/** hf_peft_bench.py's dtype names (bf16, fp32) to the engine's. */
export function benchDtype(s: string): 'bf16' | 'f32' {
  if (s === 'bf16') return 'bf16';
  if (s === 'fp32' || s === 'f32') return 'f32';
  throw new MedloraError(`bench: --dtype must be bf16 or fp32, got ${JSON.stringify(s)}`);
}

function main(): void {
  const a = parseArgs(process.argv.slice(2), {
    config: 'string',
    batch: 'number',
    seq: 'number',
    dtype: 'string',
    ckpt: 'number',
    steps: 'number',
    threads: 'number',
    profile: 'flag',
    json: 'flag',
    device: 'string',
  });
  const r = runTrainBench({
    config: (a.config as string | undefined) ?? 'smollm2-135m',
    batch: (a.batch as number | undefined) ?? 2,
    seq: (a.seq as number | undefined) ?? 400,
    dtype: benchDtype((a.dtype as string | undefined) ?? 'bf16'),
    ckpt: Boolean(a.ckpt ?? 0),
    steps: (a.steps as number | undefined) ?? 3,
    threads: (a.threads as number | undefined) ?? 2,
    profile: Boolean(a.profile),
    device: resolveDevice((a.device as string | undefined) ?? 'cpu', { what: 'bench:train --device' }).device,
  });
  if (a.json) {
    console.log(JSON.stringify(r));
    return;
  }
  console.log(
    `medlora train step: ${r.config} ${r.dtype} ckpt=${r.ckpt} ${r.batch}x${r.seq}, ${r.threads} threads${r.device ? ` on ${r.device}` : ''}, ${r.engine}`,
  );
  console.log(
    `  step ${r.step_s.toFixed(3)} s (best of ${r.steps_s.length - 1}; all: ${r.steps_s.join(', ')}) -> ${r.tok_per_s} tok/s; ${r.cpu_s} CPU s in the best step`,
  );
  console.log(
    `  phases of the best step: forward+loss ${r.phases.forward_s} s, backward ${r.phases.backward_s} s, optimizer ${r.phases.optim_s} s; setup ${r.setup_s} s; ${r.trainable.toLocaleString('en-US')} trainable`,
  );
  if (r.peak_device_allocated_gb !== undefined)
    console.log(
      `  ${r.device} memory over the steps: peak allocated ${r.peak_device_allocated_gb} GB, peak reserved ${r.peak_device_reserved_gb} GB`,
    );
  if (r.ops) {
    for (const [phase, list] of Object.entries(r.ops)) {
      const total = list.reduce((s, [, n]) => s + n, 0);
      console.log(
        `  native calls in ${phase.replace('_s', '')}: ${total} — ${list
          .slice(0, 25)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`,
      );
    }
  }
}

runIfMain(import.meta.url, main);

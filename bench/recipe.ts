// `npm run bench:recipe`: the DDI recipe (issue 19) trained by medlora (the real `medlora train` path, a child process)
// and by Hugging Face Trainer + PEFT (bench/hf_recipe.py), alternating in one run, on the same pre-tokenized DrugBank
// rows and the same random checkpoint (written once). Prints updates/s, tokens/s, model FLOP/s (4 x matmul parameters
// per real token), % of the f32 matmul ceiling measured in the same run, and the ratio. `--extract` adds greedy
// generation records/s (medlora generateIds vs HF generate) on the same prompts; `--packing` adds a medlora run with
// training.padding_free (its "medlora speed-up" is HF (pad to longest) / its own time); `--max-length-pad` adds HF
// padding every row to 400 (seed 000 as written); `--ranks N` adds both trainers data parallel on one machine, N ranks of
// threads / N threads each with accumulation / N (the same update): `medlora train --nproc-per-node N` and HF Trainer
// under torchrun (DDP over gloo), the fair comparison for the one-process-per-core policy. `--device cuda` (or cuda:N;
// default cpu) trains both on the GPU in bf16 (medlora `--device` with training.bf16 + compute_dtype bf16; HF bf16=True
// over a bf16 base), measures the ceiling as a bf16 matmul on that device (timed to a synchronize) and adds the peak
// device memory next to the peak RSS. `--bf16` does the same on the CPU (worth it where the CPU has bf16 matrix units:
// AVX512-BF16 or AMX; the ceiling is then a bf16 2048 matmul).
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cpuFacts,
  cudaIndex,
  engineInfo,
  matmulRate,
  noGrad,
  randn,
  resolveDevice,
  scope,
  setNumThreads,
  type Device,
} from '../src/tensor/index.js';
import { packageRoot, sharedPath } from '../src/util/paths.js';
import { MedloraError } from '../src/util/errors.js';
import { parseArgs, SHAPES } from './train.js';
import { findReferencePython } from './run.js';
import { isMain } from './entry.js';

// the package root found upward from this file's real path (packageRoot), not dist/bench/../..: on a GPU machine dist is
// a link to .gpu/dist, and its real path's ../.. is .gpu, which holds neither bin/ nor bench/*.py
const repoRoot = packageRoot();

/** The recipe (seed 000's DDI settings, issue 19): LoRA r 8 / alpha 16 / dropout 0.05 on every projection + lm_head. */
export const RECIPE = { batch: 2, accum: 4, updates: 12, lr: 2.5e-5, warmup: 5, maxLength: 400, rows: 200 } as const;
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'];
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
];

/** Weights of the matmuls a token passes through (every linear + lm_head; not the embedding lookup). */
export function matmulParams(shape: Record<string, unknown>): number {
  const h = shape.hidden_size as number,
    L = shape.num_hidden_layers as number,
    nh = shape.num_attention_heads as number;
  const kv = shape.num_key_value_heads as number,
    I = shape.intermediate_size as number,
    V = shape.vocab_size as number;
  const hd = h / nh;
  const attn = h * nh * hd + 2 * h * kv * hd + nh * hd * h;
  return L * (attn + 3 * h * I) + h * V;
}

/** Model FLOPs of a LoRA update per real token, as issue 19 defines them: forward + backward to the inputs = 4 x params. */
export function loraFlopsPerToken(shape: Record<string, unknown>): number {
  return 4 * matmulParams(shape);
}

/** Real tokens of `updates` updates over `rows` read in order (wrapping), batch x accum rows per update. */
export function tokensOf(rows: Array<{ input_ids: number[] }>, updates: number, batch: number, accum: number): number {
  let n = 0;
  for (let i = 0; i < updates * batch * accum; i++) n += rows[i % rows.length]!.input_ids.length;
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// inputs: one random checkpoint per shape, DrugBank rows tokenized once

/**
 * The shape's random checkpoint (with the SmolLM2 tokenizer) and the DrugBank rows + prompts, written once under `dir`;
 * `rowsOnly`: the rows and prompts alone (scripts/gpu-pack.sh carries them to a GPU machine, which has no corpus).
 */
export async function prepare(
  shapeName: string,
  dir: string,
  nRows: number,
  say: (s: string) => void,
  rowsOnly = false,
): Promise<{ model: string; rows: string; prompts: string; n: number }> {
  const shape = SHAPES[shapeName];
  if (!shape)
    throw new MedloraError(`bench:recipe: unknown shape ${shapeName} (known: ${Object.keys(SHAPES).join(', ')})`);
  const tokDir = sharedPath('fixtures', 'hf', 'SmolLM2-135M-Instruct');
  const model = join(dir, shapeName);
  mkdirSync(model, { recursive: true });
  // the SmolLM2 tokenizer (49152 ids) for both shapes: ids stay < vocab_size at the 1B shape too
  for (const f of TOKENIZER_FILES) if (existsSync(join(tokDir, f))) copyFileSync(join(tokDir, f), join(model, f));
  const raw = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    ...shape,
    max_position_embeddings: 8192,
    rms_norm_eps: 1e-5,
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 2,
    initializer_range: 0.02,
  };
  if (!rowsOnly && !existsSync(join(model, 'model.safetensors'))) {
    say(`writing random weights for ${shapeName} (f32, seed 0) to ${model} (once) ...`);
    const { initModel, saveModel } = await import('../src/model/init.js');
    const m = initModel(raw, { seed: 0 });
    saveModel(m, raw, model);
    m.dispose?.();
  }
  const rows = join(dir, `ddi-rows-${nRows}.jsonl`);
  const prompts = join(dir, `ddi-prompts-${nRows}.jsonl`);
  if (!existsSync(rows) || !existsSync(prompts)) {
    const csv = sharedPath('corpora', 'drugbank-ddi-sentences', 'Clean_drub_interactions.csv');
    if (!existsSync(csv)) throw new MedloraError(`bench:recipe: ${csv} is missing (the DrugBank sentences corpus)`);
    const { drugbankSentences } = await import('../src/data/import/drugbank-sentences.js');
    const { newCounts } = await import('../src/data/import/common.js');
    const { encodeRecord } = await import('../src/data/encode.js');
    const { loadTokenizer } = await import('../src/tokenize/tokenizer.js');
    const tok = loadTokenizer(model);
    const out: string[] = [],
      pr: string[] = [];
    for await (const r of drugbankSentences.read(csv, newCounts(), { skipInvalid: true })) {
      const e = encodeRecord(r, tok, { style: 'alpaca', maxLength: RECIPE.maxLength, overflow: 'drop' });
      if (!e.ok) continue;
      out.push(JSON.stringify({ input_ids: e.example.input_ids, labels: e.example.labels }));
      pr.push(JSON.stringify({ input_ids: e.example.input_ids.slice(0, e.example.promptLength) }));
      if (out.length >= nRows) break;
    }
    writeFileSync(rows, `${out.join('\n')}\n`);
    writeFileSync(prompts, `${pr.join('\n')}\n`);
  }
  return { model, rows, prompts, n: nRows };
}

function readRows(file: string): Array<{ input_ids: number[]; labels: number[] }> {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { input_ids: number[]; labels: number[] });
}

// ---------------------------------------------------------------------------------------------------------------
// runs

interface Opts {
  updates: number;
  batch: number;
  accum: number;
  threads: number;
  ckpt: boolean;
  /** where both trainers compute: 'cpu' (f32 unless bf16) or a CUDA device (bf16) */
  device: Device;
  /** both trainers in bf16 (the frozen base bf16, f32 LoRA): always on a GPU, `--bf16` on a CPU with bf16 units */
  bf16: boolean;
}

function lastJson(out: string, want: (j: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  for (const l of out.trim().split('\n').reverse()) {
    if (!l.startsWith('{')) continue;
    try {
      const j = JSON.parse(l) as Record<string, unknown>;
      if (want(j)) return j;
    } catch {
      /* not ours */
    }
  }
  return undefined;
}

function child(cmd: string, args: string[], what: string, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 << 20,
    env: { ...process.env, ...env },
  });
  if (r.error) throw new MedloraError(`${what}: ${r.error.message}`);
  if (r.status !== 0)
    throw new MedloraError(
      `${what} exited with ${r.status ?? r.signal}: ${`${r.stderr ?? ''}`.trim().split('\n').slice(-4).join(' | ')}`,
    );
  return r.stdout;
}

/** Clock ticks per second of /proc/<pid>/stat's utime / stime (getconf CLK_TCK; 100 on Linux). */
let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(`${r.stdout ?? ''}`.trim());
    clkTck = Number.isFinite(n) && n > 0 ? n : 100;
  }
  return clkTck;
}

/** user + sys CPU seconds of a live process, all its threads (/proc/<pid>/stat fields 14 and 15), or undefined. */
export function procCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // f[0] = field 3 (state)
    return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** A process's peak resident memory so far (VmHWM of /proc/<pid>/status) in GB, or undefined when unreadable. */
export function procPeakRssGb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A process and all its descendants (children of `medlora train --nproc-per-node N`: the launcher and its ranks), from
 * the parent pid in each /proc/<pid>/stat; [] when the process is gone.
 */
export function procTreePids(root: number | undefined): number[] {
  if (root === undefined || !existsSync(`/proc/${root}`)) return [];
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]); // field 4
      const l = kids.get(ppid);
      if (l) l.push(Number(d));
      else kids.set(ppid, [Number(d)]);
    } catch {
      // the process ended while we listed /proc
    }
  }
  const out: number[] = [];
  for (const q = [root]; q.length;) {
    const p = q.shift()!;
    out.push(p);
    q.push(...(kids.get(p) ?? []));
  }
  return out;
}

/** user + sys CPU seconds of a process tree (each process's own threads; children that already exited are not counted). */
export function treeCpuSeconds(root: number | undefined): number | undefined {
  const c = procTreePids(root).map(procCpuSeconds);
  return c.length && c.every((x) => x !== undefined) ? c.reduce((a, b) => a! + b!, 0) : undefined;
}

/** Sum of the peak resident memory (VmHWM) of a process tree's processes, in GB: for N ranks, at least their joint peak. */
export function treePeakRssGb(root: number | undefined): number | undefined {
  const m = procTreePids(root).map(procPeakRssGb);
  return m.length && m.every((x) => x !== undefined) ? m.reduce((a, b) => a! + b!, 0) : undefined;
}

/** What a trainer's run cost besides its wall time: CPU seconds over its timed loop and the machine's load meanwhile. */
interface RunCost {
  /** user + sys CPU seconds of the trainer process over its timed loop (all threads) */
  cpu_s?: number;
  /** 1-min load average sampled every second while the child ran: mean and max */
  load1_mean: number;
  load1_max: number;
  /** the trainer's peak resident memory (medlora: VmHWM when its done event arrives; HF: ru_maxrss) */
  peak_rss_gb?: number;
  /**
   * --device cuda: the GPU's memory in use (nvidia-smi memory.used, sampled every second while the child ran) above
   * what was in use before it started, in GB: the CUDA context and the allocator's cache included, the same measure
   * for both trainers; undefined when nvidia-smi cannot be read
   */
  gpu_used_peak_gb?: number;
}

/** The GPU's memory in use (nvidia-smi memory.used of device `index`) in GB, or undefined when nvidia-smi fails. */
function gpuMemoryUsedGb(index: number): number | undefined {
  const r = spawnSync('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-i', String(index)], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  const mib = Number(`${r.stdout ?? ''}`.trim().split('\n')[0]);
  return r.status === 0 && Number.isFinite(mib) ? (mib * 1048576) / 1e9 : undefined;
}

/**
 * Run a child like child() but asynchronously, sampling the 1-min load average every second, and, for a medlora
 * child, its CPU time (/proc/<pid>/stat) when its --json "start" and "done" events arrive (the loop that wall_s times;
 * the parent reads the lines within milliseconds, so the window is the loop's to within the parent's latency).
 */
function childTimed(
  cmd: string,
  args: string[],
  what: string,
  env: NodeJS.ProcessEnv = {},
  gpu?: number,
): Promise<{ stdout: string; cost: RunCost }> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '',
      stderr = '',
      pending = '',
      cpuStart: number | undefined,
      cpuEnd: number | undefined,
      peakGb: number | undefined;
    const loads: number[] = [loadavg()[0]!];
    // the GPU's memory in use before the child and every second while it runs (--device cuda)
    const gpuBase = gpu === undefined ? undefined : gpuMemoryUsedGb(gpu);
    const gpuSeen: number[] = [];
    const timer = setInterval(() => {
      loads.push(loadavg()[0]!);
      if (gpu !== undefined && gpuBase !== undefined) {
        const g = gpuMemoryUsedGb(gpu);
        if (g !== undefined) gpuSeen.push(g);
      }
    }, 1000);
    p.stdout.on('data', (d: Buffer) => {
      const s = d.toString();
      stdout += s;
      pending += s;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        // over the process tree: `--nproc-per-node N` runs the ranks as children of a launcher
        if (line.startsWith('{"event":"start"')) cpuStart = treeCpuSeconds(p.pid);
        else if (line.startsWith('{"event":"done"')) {
          cpuEnd = treeCpuSeconds(p.pid);
          peakGb = treePeakRssGb(p.pid);
        }
      }
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    p.on('error', (e) => {
      clearInterval(timer);
      reject(new MedloraError(`${what}: ${e.message}`));
    });
    p.on('close', (code, signal) => {
      clearInterval(timer);
      loads.push(loadavg()[0]!);
      if (code !== 0) {
        reject(
          new MedloraError(`${what} exited with ${code ?? signal}: ${stderr.trim().split('\n').slice(-4).join(' | ')}`),
        );
        return;
      }
      const cost: RunCost = {
        load1_mean: loads.reduce((a, b) => a + b, 0) / loads.length,
        load1_max: Math.max(...loads),
      };
      if (cpuStart !== undefined && cpuEnd !== undefined) cost.cpu_s = cpuEnd - cpuStart;
      if (peakGb !== undefined) cost.peak_rss_gb = peakGb;
      if (gpuBase !== undefined && gpuSeen.length) cost.gpu_used_peak_gb = Math.max(...gpuSeen) - gpuBase;
      resolvePromise({ stdout, cost });
    });
  });
}

/** Threads of each of N ranks sharing a trainer's threads (main checks that N divides them). */
const threadsPerRank = (threads: number, ranks: number): number => Math.max(1, Math.floor(threads / ranks));

/** One `medlora train` run (the CLI, the real Trainer path) on the rows; wall_s = the trainer's loop (from its done event). */
async function medloraTrain(
  inp: { model: string; rows: string },
  dir: string,
  o: Opts,
  paddingFree = false,
  ranks = 1,
): Promise<{ wall_s: number; loss?: number; peak_device_allocated_gb?: number } & RunCost> {
  // N ranks (data parallel over c10d, `--nproc-per-node N`) of threads / N threads each; each rank takes batch rows of a
  // global micro-batch of batch x N rows, so accumulation / N micro-batches make the same update of batch x accum rows
  const threads = threadsPerRank(o.threads, ranks);
  const out = join(dir, 'medlora-run');
  rmSync(out, { recursive: true, force: true });
  const cfgFile = join(dir, 'medlora-recipe.yaml');
  const cfg = {
    model: inp.model,
    output_dir: out,
    data: { train: inp.rows, format: 'tokenized', max_length: RECIPE.maxLength },
    lora: { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: TARGETS },
    training: {
      per_device_train_batch_size: o.batch,
      gradient_accumulation_steps: o.accum / ranks,
      max_steps: o.updates,
      learning_rate: RECIPE.lr,
      lr_scheduler_type: 'linear',
      warmup_steps: RECIPE.warmup,
      weight_decay: 0,
      optim: 'adamw_torch',
      // bf16 (on a GPU, or --bf16): the recipe as users run it there: the frozen base in bf16, f32 LoRA weights
      ...(o.bf16 ? { bf16: true, compute_dtype: 'bf16' } : { bf16: false }),
      shuffle: false,
      gradient_checkpointing: o.ckpt,
      padding_free: paddingFree,
      logging_steps: 1000,
      save_steps: null,
      eval_steps: null,
      seed: 0,
    },
  };
  writeFileSync(cfgFile, `${JSON.stringify(cfg, null, 2)}\n`); // JSON is YAML
  const { stdout, cost } = await childTimed(
    process.execPath,
    [
      join(repoRoot, 'bin', 'medlora.js'),
      'train',
      '--config',
      cfgFile,
      '--threads',
      String(threads),
      ...(ranks > 1 ? ['--nproc-per-node', String(ranks)] : []),
      // named on the CPU too: training.device's default (auto) would take a GPU where there is one
      '--device',
      o.device,
      '--json',
    ],
    ranks > 1 ? `medlora train --nproc-per-node ${ranks}` : 'medlora train',
    { OMP_NUM_THREADS: String(threads) },
    cudaIndex(o.device),
  );
  const done = lastJson(stdout, (j) => j.event === 'done');
  if (!done || typeof done.wall_s !== 'number')
    throw new MedloraError('medlora train: no "done" event with wall_s in its --json output');
  // on a GPU the done event carries the caching allocator's peak (cudaMemoryStats), as HF's max_memory_allocated
  const peak = typeof done.gpu_peak_allocated_bytes === 'number' ? done.gpu_peak_allocated_bytes / 1e9 : undefined;
  return { wall_s: done.wall_s, ...cost, ...(peak !== undefined ? { peak_device_allocated_gb: peak } : {}) };
}

async function hfTrain(
  python: string,
  inp: { model: string; rows: string },
  dir: string,
  o: Opts,
  pad: 'longest' | 'max_length',
  ranks = 1,
): Promise<
  {
    wall_s: number;
    computed_tokens: number;
    real_tokens: number;
    peak_rss_gb: number;
    peak_device_allocated_gb?: number;
  } & RunCost
> {
  // N ranks: torchrun (torch.distributed.run) starts N copies; Trainer then runs DDP over gloo on the CPU, each rank
  // taking its own micro-batches of `batch` rows, so accumulation / N makes the same update of batch x accum rows
  const threads = threadsPerRank(o.threads, ranks);
  const { stdout, cost } = await childTimed(
    python,
    [
      ...(ranks > 1 ? ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', String(ranks)] : []),
      join(repoRoot, 'bench', 'hf_recipe.py'),
      '--model',
      inp.model,
      '--data',
      inp.rows,
      '--updates',
      String(o.updates),
      '--batch',
      String(o.batch),
      '--accum',
      String(o.accum / ranks),
      '--pad',
      pad,
      '--max-length',
      String(RECIPE.maxLength),
      '--threads',
      String(threads),
      '--ckpt',
      o.ckpt ? '1' : '0',
      '--lr',
      String(RECIPE.lr),
      '--warmup',
      String(RECIPE.warmup),
      '--pad-id',
      '2',
      '--out',
      join(dir, 'hf-run'),
      ...(o.device === 'cpu' ? [] : ['--device', 'cuda']),
      ...(o.bf16 ? ['--bf16'] : []),
    ],
    ranks > 1 ? `torchrun --nproc_per_node ${ranks} hf_recipe.py --pad ${pad}` : `hf_recipe.py --pad ${pad}`,
    // on a GPU, HF sees only the chosen one (Trainer takes cuda:0, and DataParallel over several); a user's own
    // CUDA_VISIBLE_DEVICES is left alone (then --device cuda:N counts within it for both trainers)
    {
      OMP_NUM_THREADS: String(threads),
      ...(o.device !== 'cpu' && process.env.CUDA_VISIBLE_DEVICES === undefined
        ? { CUDA_VISIBLE_DEVICES: String(cudaIndex(o.device)) }
        : {}),
    },
    cudaIndex(o.device),
  );
  if (ranks > 1) {
    // one result line per rank: the job took as long as its slowest rank; CPU, tokens and peaks add up
    // (the ranks print at the same moment, so two lines can run together: match the flat objects, not the lines)
    const all = [...stdout.matchAll(/\{"engine": "hf-peft[^{}]*\}/g)].map(
      (m) =>
        JSON.parse(m[0]) as {
          wall_s: number;
          cpu_s: number;
          computed_tokens: number;
          real_tokens: number;
          peak_rss_gb: number;
        },
    );
    if (all.length !== ranks)
      throw new MedloraError(`hf_recipe.py under torchrun: ${all.length} result lines for ${ranks} ranks`);
    const sum = (k: 'cpu_s' | 'computed_tokens' | 'real_tokens' | 'peak_rss_gb'): number =>
      all.reduce((a, r) => a + r[k], 0);
    return {
      ...cost,
      wall_s: Math.max(...all.map((r) => r.wall_s)),
      cpu_s: sum('cpu_s'),
      computed_tokens: sum('computed_tokens'),
      real_tokens: sum('real_tokens'),
      peak_rss_gb: sum('peak_rss_gb'),
    };
  }
  const j = lastJson(stdout, (x) => typeof x.wall_s === 'number');
  if (!j) throw new MedloraError('hf_recipe.py: no JSON result line with wall_s');
  // hf_recipe.py times its own loop's CPU (time.process_time around trainer.train(): user + sys of all threads)
  const r = j as unknown as {
    wall_s: number;
    computed_tokens: number;
    real_tokens: number;
    peak_rss_gb: number;
    peak_device_allocated_gb?: number;
  };
  return { ...r, ...cost, cpu_s: typeof j.cpu_s === 'number' ? j.cpu_s : undefined };
}

/** Child mode: greedy generation over the prompts with medlora's engine path (batched, KV cache), one JSON line. */
async function extractChild(
  model: string,
  prompts: string,
  batch: number,
  maxNew: number,
  threads: number,
): Promise<void> {
  setNumThreads(threads);
  const { loadModel } = await import('../src/model/load.js');
  const { generateIds } = await import('../src/generate/generate.js');
  const m = loadModel(model);
  const ps = readFileSync(prompts, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { input_ids: number[] }).input_ids);
  const t0 = performance.now();
  const res = generateIds(m as never, ps, { maxNewTokens: maxNew, batchSize: batch, eosIds: [2], padId: 2 });
  const wall = (performance.now() - t0) / 1000;
  const gen = res.reduce((a, r) => a + r.ids.length + (r.finishReason === 'eos' ? 1 : 0), 0);
  console.log(
    JSON.stringify({
      engine: 'medlora generateIds',
      records: ps.length,
      wall_s: Math.round(wall * 1000) / 1000,
      records_per_s: Math.round((1000 * ps.length) / wall) / 1000,
      generated_tokens: gen,
      gen_tok_per_s: Math.round((100 * gen) / wall) / 100,
    }),
  );
}

/** The matmul a run's ceiling times: bf16 8192 on a GPU, else 2048 in the run's dtype. */
function ceilingMatmul(device: Device, bf16: boolean): { n: number; dtype: 'f32' | 'bf16'; what: string } {
  if (device !== 'cpu') return { n: 8192, dtype: 'bf16', what: `bf16 8192 on ${device}` };
  const dtype = bf16 ? 'bf16' : 'f32';
  return { n: 2048, dtype, what: `${dtype} 2048` };
}

function ceiling(threads: number, device: Device, bf16: boolean): number {
  setNumThreads(threads);
  const m = ceilingMatmul(device, bf16);
  if (device !== 'cpu') return deviceMatmulGflops(device, m.n, m.dtype).gflops;
  return matmulRate(m.n, m.dtype, 0.5).gflops;
}

/**
 * The matmul rate of a device: `calls` products of two random n x n matrices on it, launched back to back and timed to
 * a synchronize (item() of one element of the last product: a CUDA stream runs in order, so the copy back waits for
 * every product; a time without it would measure the launches). Best of `rounds`, after a warm-up round.
 */
export function deviceMatmulGflops(
  device: Device,
  n: number,
  dtype: 'f32' | 'bf16',
  calls = 10,
  rounds = 3,
): { gflops: number; rounds_ms: number[] } {
  return scope(() =>
    noGrad(() => {
      const a = randn([n, n], { dtype, device });
      const b = randn([n, n], { dtype, device });
      const round = (): number => {
        const t0 = performance.now();
        let c = a.matmul(b);
        for (let i = 1; i < calls; i++) {
          c.dispose();
          c = a.matmul(b);
        }
        c.narrow(0, 0, 1).narrow(1, 0, 1).item();
        c.dispose();
        return performance.now() - t0;
      };
      round(); // warm-up: kernel selection, clocks
      const ms: number[] = [];
      for (let r = 0; r < rounds; r++) ms.push(round());
      return { gflops: (2 * n ** 3 * calls) / (Math.min(...ms) * 1e6), rounds_ms: ms };
    }),
  );
}

const fmt = (x: number, d = 2): string => x.toFixed(d);

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2), {
    json: 'flag',
    big: 'flag',
    shape: 'string',
    updates: 'number',
    batch: 'number',
    accum: 'number',
    threads: 'number',
    reps: 'number',
    rows: 'number',
    dir: 'string',
    'no-ref': 'flag',
    'no-install': 'flag',
    'max-length-pad': 'flag',
    ckpt: 'flag',
    packing: 'flag',
    ranks: 'number',
    extract: 'flag',
    'extract-only': 'flag',
    'extract-records': 'number',
    'max-new-tokens': 'number',
    'extract-batch': 'number',
    'child-extract': 'flag',
    model: 'string',
    prompts: 'string',
    device: 'string',
    'rows-only': 'flag',
    bf16: 'flag',
  });
  const threads = (a.threads as number | undefined) ?? 2;
  if (a['child-extract']) {
    await extractChild(
      a.model as string,
      a.prompts as string,
      (a['extract-batch'] as number | undefined) ?? 8,
      (a['max-new-tokens'] as number | undefined) ?? 32,
      threads,
    );
    return;
  }
  const json = Boolean(a.json);
  const say = (s: string): void => {
    if (json) console.error(s);
    else console.log(s);
  };
  const shapeName = (a.shape as string | undefined) ?? (a.big ? 'llama-3.2-1b' : 'smollm2-135m');
  // --device: cpu (the default, f32 as always) or cuda / cuda:N (bf16), checked against this addon and machine
  const device = resolveDevice((a.device as string | undefined) ?? 'cpu', { what: 'bench:recipe --device' }).device;
  const o: Opts = {
    updates: (a.updates as number | undefined) ?? (a.big ? 4 : RECIPE.updates),
    batch: (a.batch as number | undefined) ?? RECIPE.batch,
    accum: (a.accum as number | undefined) ?? RECIPE.accum,
    threads,
    ckpt: Boolean(a.ckpt),
    device,
    bf16: device !== 'cpu' || Boolean(a.bf16),
  };
  const onGpu = device !== 'cpu';
  const dtypeName = o.bf16 ? 'bf16' : 'fp32';
  if (o.bf16 && !onGpu) {
    if (a.extract || a['extract-only'])
      throw new MedloraError('bench:recipe --bf16: --extract is prepared for f32 on the CPU only');
    if (!cpuFacts().bf16Units.length)
      say(
        'note: --bf16 on a CPU without bf16 matrix units (AVX512-BF16 / AMX): both trainers run emulated bf16, far slower than f32',
      );
  }
  if (onGpu && (a.extract || a['extract-only'] || (a.ranks as number | undefined) !== undefined))
    throw new MedloraError(
      `bench:recipe --device ${device}: --extract and --ranks are prepared for the CPU only (one GPU, one process)`,
    );
  const reps = (a.reps as number | undefined) ?? 1;
  const ranks = (a.ranks as number | undefined) ?? 1;
  if (!(Number.isInteger(ranks) && ranks >= 1 && o.accum % ranks === 0 && threads % ranks === 0))
    throw new MedloraError(
      `bench:recipe: --ranks must be a positive integer dividing --accum (${o.accum}) and --threads (${threads}), got ${ranks}`,
    );
  for (const [k, v] of Object.entries({ updates: o.updates, batch: o.batch, accum: o.accum, threads, reps })) {
    if (!(Number.isInteger(v) && v >= 1))
      throw new MedloraError(`bench:recipe: --${k} must be a positive integer, got ${v}`);
  }
  const dir = (a.dir as string | undefined) ?? '/tmp/medlora-recipe';
  const nRows = (a.rows as number | undefined) ?? RECIPE.rows;
  const shape = SHAPES[shapeName]!;
  const info = engineInfo();
  say(
    `bench:recipe ${shapeName} ${dtypeName}${onGpu ? ` on ${device}` : ''}: ${o.updates} updates of ${o.batch} x ${o.accum} DrugBank DDI rows, LoRA r8 on ${TARGETS.length} module kinds, ` +
      `${threads} threads, libtorch ${info.fullVersion ?? info.torchVersion}, 1-min load ${loadavg()[0]!.toFixed(1)}`,
  );
  const inp = await prepare(shapeName, dir, nRows, say, Boolean(a['rows-only']));
  if (a['rows-only']) {
    say(`rows: ${inp.rows}, prompts: ${inp.prompts}`);
    return;
  }
  const rows = readRows(inp.rows);
  const tokens = tokensOf(rows, o.updates, o.batch, o.accum);
  const flopsTok = loraFlopsPerToken(shape);
  say(
    `rows: ${rows.length} (mean ${fmt(rows.reduce((s, r) => s + r.input_ids.length, 0) / rows.length, 1)} tokens); ` +
      `${tokens} real tokens per run; ${fmt(flopsTok / 1e9, 3)} GFLOP per token (4 x ${(matmulParams(shape) / 1e6).toFixed(1)}M matmul params)`,
  );

  let python: string | undefined;
  if (!a['no-ref']) {
    const f = findReferencePython(!a['no-install'], say);
    python = f.python;
    say(
      f.python ? `reference: ${f.python} (torch, transformers, peft ${f.versions})` : `reference skipped: ${f.reason}`,
    );
  }
  const ceil: number[] = [ceiling(threads, device, o.bf16)];
  const ceilingWhat = ceilingMatmul(device, o.bf16).what;
  const runs: Array<
    { engine: string; wall_s: number; computed?: number; load1: number; peak_device_allocated_gb?: number } & RunCost
  > = [];
  const extractOnly = Boolean(a['extract-only']);
  for (let rep = 0; rep < reps && !extractOnly; rep++) {
    const order =
      rep % 2 === 0
        ? ['medlora', 'hf-longest', 'medlora-ranks', 'hf-ranks', 'medlora-packed', 'hf-max_length']
        : ['hf-max_length', 'medlora-packed', 'hf-ranks', 'medlora-ranks', 'hf-longest', 'medlora'];
    for (const e of order) {
      if (e.startsWith('hf') && !python) continue;
      if (e === 'medlora-packed' && !a.packing) continue;
      if ((e === 'medlora-ranks' || e === 'hf-ranks') && ranks === 1) continue;
      if (e === 'hf-max_length' && !a['max-length-pad']) continue;
      const load1 = loadavg()[0]!;
      if (e.startsWith('medlora'))
        runs.push({
          engine: e,
          ...(await medloraTrain(inp, dir, o, e === 'medlora-packed', e === 'medlora-ranks' ? ranks : 1)),
          load1,
        });
      else {
        const r = await hfTrain(
          python!,
          inp,
          dir,
          o,
          e === 'hf-max_length' ? 'max_length' : 'longest',
          e === 'hf-ranks' ? ranks : 1,
        );
        const { wall_s, cpu_s, load1_mean, load1_max, peak_rss_gb, gpu_used_peak_gb, peak_device_allocated_gb } = r; // (r.engine is the script's own label)
        runs.push({
          engine: e,
          wall_s,
          cpu_s,
          load1_mean,
          load1_max,
          peak_rss_gb,
          gpu_used_peak_gb,
          peak_device_allocated_gb,
          computed: r.computed_tokens,
          load1,
        });
      }
      const r = runs[runs.length - 1]!;
      console.error(
        `run ${JSON.stringify({ rep, engine: e, wall_s: r.wall_s, cpu_s: r.cpu_s, load1: Math.round(load1 * 10) / 10, load1_mean: Math.round(r.load1_mean * 10) / 10 })}`,
      );
    }
  }
  ceil.push(ceiling(threads, device, o.bf16));
  const ceilG = Math.max(...ceil);
  const of = (e: string): typeof runs => runs.filter((r) => r.engine === e);
  const best = (e: string): number | undefined => {
    const w = of(e).map((r) => r.wall_s);
    return w.length ? Math.min(...w) : undefined;
  };
  // CPU seconds of the timed loop: what the trainer itself consumed, much less sensitive to other processes' load
  // than the wall time (which is what a user waits for, and stays the headline)
  const bestCpu = (e: string): number | undefined => {
    const c = of(e)
      .map((r) => r.cpu_s)
      .filter((x): x is number => x !== undefined);
    return c.length ? Math.min(...c) : undefined;
  };
  const table: Array<Record<string, unknown>> = [];
  const mBest = best('medlora');
  const mCpu = bestCpu('medlora');
  const hfBest = best('hf-longest');
  const hfCpu = bestCpu('hf-longest');
  for (const e of ['medlora', 'medlora-ranks', 'medlora-packed', 'hf-longest', 'hf-ranks', 'hf-max_length']) {
    const w = best(e);
    if (w === undefined) continue;
    const gflops = (tokens * flopsTok) / w / 1e9;
    const cpu = bestCpu(e);
    const atBest = of(e).find((r) => r.wall_s === w)!;
    table.push({
      engine: e,
      ...(e === 'medlora-ranks' || e === 'hf-ranks' ? { ranks, threads_per_rank: threadsPerRank(threads, ranks) } : {}),
      wall_s: w,
      updates_per_s: o.updates / w,
      tokens_per_s: tokens / w,
      model_gflops: gflops,
      pct_ceiling: (100 * gflops) / ceilG,
      ratio_medlora: mBest !== undefined && e.startsWith('hf') ? w / mBest : undefined,
      // a medlora variant's own speed-up over the best HF setting (the medlora row's is ratio_medlora of hf-longest)
      speedup_vs_hf_longest: hfBest !== undefined && e.startsWith('medlora-') ? hfBest / w : undefined,
      cpu_speedup_vs_hf_longest:
        hfCpu !== undefined && cpu !== undefined && e.startsWith('medlora-') ? hfCpu / cpu : undefined,
      cpu_s: cpu,
      cpu_s_per_update: cpu === undefined ? undefined : cpu / o.updates,
      peak_rss_gb: Math.max(...of(e).map((r) => r.peak_rss_gb ?? 0)) || undefined,
      // --device cuda: the GPU memory in use above the idle baseline (nvidia-smi, both trainers) and the caching
      // allocator's peak allocated bytes (HF: torch's max_memory_allocated; medlora: its done event, cudaMemoryStats)
      ...(onGpu
        ? {
            gpu_used_peak_gb: Math.max(...of(e).map((r) => r.gpu_used_peak_gb ?? 0)) || undefined,
            peak_device_allocated_gb: Math.max(...of(e).map((r) => r.peak_device_allocated_gb ?? 0)) || undefined,
          }
        : {}),
      ratio_medlora_cpu: mCpu !== undefined && cpu !== undefined && e.startsWith('hf') ? cpu / mCpu : undefined,
      load1_mean: atBest.load1_mean,
      load1_max: atBest.load1_max,
      runs: of(e).map((r) => r.wall_s),
      runs_detail: of(e).map((r) => ({
        wall_s: r.wall_s,
        cpu_s: r.cpu_s,
        load1_mean: r.load1_mean,
        load1_max: r.load1_max,
      })),
    });
  }

  let extract: Array<Record<string, unknown>> | undefined;
  if (a.extract || extractOnly) {
    const nRec = (a['extract-records'] as number | undefined) ?? 16;
    const maxNew = (a['max-new-tokens'] as number | undefined) ?? 32;
    const eb = (a['extract-batch'] as number | undefined) ?? 8;
    const pfile = join(dir, `ddi-prompts-first-${nRec}.jsonl`);
    writeFileSync(pfile, `${readFileSync(inp.prompts, 'utf8').trim().split('\n').slice(0, nRec).join('\n')}\n`);
    extract = [];
    const m = child(
      process.execPath,
      [
        fileURLToPath(import.meta.url),
        '--child-extract',
        '--model',
        inp.model,
        '--prompts',
        pfile,
        '--extract-batch',
        String(eb),
        '--max-new-tokens',
        String(maxNew),
        '--threads',
        String(threads),
      ],
      'medlora extract child',
      { OMP_NUM_THREADS: String(threads) },
    );
    extract.push(lastJson(m, (j) => typeof j.wall_s === 'number')!);
    if (python) {
      const h = child(
        python,
        [
          join(repoRoot, 'bench', 'hf_recipe.py'),
          '--extract',
          '--model',
          inp.model,
          '--prompts',
          pfile,
          '--batch',
          String(eb),
          '--max-new-tokens',
          String(maxNew),
          '--threads',
          String(threads),
          '--pad-id',
          '2',
          '--eos-id',
          '2',
        ],
        'hf_recipe.py --extract',
        { OMP_NUM_THREADS: String(threads) },
      );
      extract.push(lastJson(h, (j) => typeof j.wall_s === 'number')!);
    }
  }

  // the issue's comparison: the fastest medlora setting of this run against the fastest HF setting of this run
  // (with --ranks, HF's own 2-rank run may be its fastest; without it, this is the medlora row's ratio)
  const fastest = (prefix: string): { engine: string; wall_s: number } | undefined =>
    table
      .filter((r) => String(r.engine).startsWith(prefix))
      .map((r) => ({ engine: String(r.engine), wall_s: r.wall_s as number }))
      .sort((x, y) => x.wall_s - y.wall_s)[0];
  const fm = fastest('medlora'),
    fh = fastest('hf');
  const bestVsBest = fm && fh ? { medlora: fm, hf: fh, speedup: fh.wall_s / fm.wall_s } : undefined;
  const result = {
    shape: shapeName,
    dtype: dtypeName,
    ...o,
    rows: rows.length,
    tokens,
    flops_per_token: flopsTok,
    ceiling_gflops: ceilG,
    ceiling_matmul: ceilingWhat,
    ceilings: ceil,
    load1_end: loadavg()[0],
    table,
    best_vs_best: bestVsBest,
    extract,
  };
  if (json) {
    console.log(JSON.stringify(result));
    return;
  }
  say('');
  say(
    '| trainer | time for ' +
      o.updates +
      ' updates | updates/s | tokens/s | model GFLOP/s | % of ceiling | medlora speed-up | CPU s (loop) | CPU-s/update | speed-up by CPU | peak RSS | 1-min load during run |' +
      (onGpu ? ' peak GPU memory in use | peak allocated |' : ''),
  );
  say(`|---|---|---|---|---|---|---|---|---|---|---|---|${onGpu ? '---|---|' : ''}`);
  const opt = (x: unknown, d = 2, unit = ''): string => (typeof x === 'number' ? `${fmt(x, d)}${unit}` : '-');
  for (const r of table) {
    say(
      `| ${r.ranks ? `${r.engine}: ${ranks} ranks x ${r.threads_per_rank as number} thread(s)` : r.engine} | ${fmt(r.wall_s as number, 1)} s | ${fmt(r.updates_per_s as number, 3)} | ${fmt(r.tokens_per_s as number, 1)} | ${fmt(r.model_gflops as number, 1)} | ` +
        `${fmt(r.pct_ceiling as number, 0)}% | ${opt(r.ratio_medlora ?? r.speedup_vs_hf_longest, 2, 'x')} | ${opt(r.cpu_s, 1, ' s')} | ${opt(r.cpu_s_per_update, 2, ' s')} | ` +
        `${opt(r.ratio_medlora_cpu ?? r.cpu_speedup_vs_hf_longest, 2, 'x')} | ${opt(r.peak_rss_gb, 2, ' GB')} | ${opt(r.load1_mean, 1)} (max ${opt(r.load1_max, 1)}) |` +
        (onGpu ? ` ${opt(r.gpu_used_peak_gb, 2, ' GB')} | ${opt(r.peak_device_allocated_gb, 2, ' GB')} |` : ''),
    );
  }
  say(
    'wall time (best of the reps) is what a user waits for and stays the headline; CPU s = user + sys of the trainer ' +
      'process over its timed loop (all threads; min of the reps), less sensitive to the other processes on the machine ' +
      `(each trainer asks for ${threads} threads); load = 1-min load average sampled every second during the best-wall run`,
  );
  if (onGpu) {
    say(
      `matmul ceiling (engine ${ceilingWhat}, 10 products timed to a synchronize, best of start/end of this run): ${fmt(ceilG, 1)} GFLOP/s (${ceil.map((c) => fmt(c, 1)).join(' / ')})`,
    );
    say(
      'peak GPU memory in use = nvidia-smi memory.used sampled every second above its value before the trainer started ' +
        "(CUDA context and allocator cache included, both trainers); peak allocated = the caching allocator's peak " +
        "(HF: torch.cuda.max_memory_allocated; medlora: its done event's gpu_peak_allocated_bytes); '-' = nvidia-smi unreadable",
    );
  } else
    say(
      `matmul ceiling (engine ${ceilingWhat}, ${threads} threads, best of start/end of this run): ${fmt(ceilG, 1)} GFLOP/s (${ceil.map((c) => fmt(c, 1)).join(' / ')})`,
    );
  if (extract)
    for (const x of extract)
      say(
        `extract ${x.engine}: ${x.records} records in ${x.wall_s} s = ${x.records_per_s} records/s (${x.generated_tokens} tokens, ${x.gen_tok_per_s} tok/s)`,
      );
  if (bestVsBest)
    say(
      `fastest medlora setting vs fastest HF setting of this run: ${fmt(bestVsBest.speedup)}x ` +
        `(${bestVsBest.medlora.engine} ${fmt(bestVsBest.medlora.wall_s, 1)} s vs ${bestVsBest.hf.engine} ${fmt(bestVsBest.hf.wall_s, 1)} s)`,
    );
  say(`1-min load at the end: ${loadavg()[0]!.toFixed(1)}`);
}

if (isMain(import.meta.url)) {
  main().catch((e: unknown) => {
    if (e instanceof MedloraError) {
      console.error(`medlora bench: ${e.message}`);
      process.exit(1);
    }
    throw e;
  });
}

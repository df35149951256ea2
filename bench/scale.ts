// `npm run bench:scale`: the recipe at its real scale (issue 19). Writes a Llama-3.1-8B-shaped random checkpoint as
// sharded bf16 safetensors (HF layout: model-0000i-of-0000n.safetensors + model.safetensors.index.json; ~16 GB, once),
// then runs one optimizer step of the DDI recipe with QLoRA (quantization.load_in_4bit) through `medlora train`, and
// prints the child's peak resident memory (VmHWM, polled from /proc) and the step time. `--dry` does the same on the
// 8B config shrunk to 2 layers of width 256 (seconds, small disk), and prints the plan of the real run.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { cat, keep, manualSeed, noGrad, ones, randn, scope, setNumThreads, tensor } from '../src/tensor/index.js';
import { buildModel } from '../src/model/registry.js';
import { declaredParameters } from '../src/model/layers.js';
import { parseModelConfig } from '../src/io/config.js';
import { causalLmLoss } from '../src/model/loss.js';
import { quantizeModel } from '../src/adapt/nf4-linear.js';
import { applyLora } from '../src/adapt/apply.js';
import { createOptimizer } from '../src/train/optim.js';
import { buildHeader, writeFileAtomic, shardFileName, INDEX_FILE, type TensorData } from '../src/io/safetensors.js';
import { tensorData } from '../src/io/tensor-bytes.js';
import { packageRoot, sharedPath } from '../src/util/paths.js';
import { MedloraError } from '../src/util/errors.js';
import { parseArgs } from './train.js';
import { prepare, RECIPE } from './recipe.js';
import { isMain } from './entry.js';

// the package root found upward from this file's real path (packageRoot), not dist/bench/../..: on a GPU machine dist is
// a link to .gpu/dist, and its real path's ../.. is .gpu, which holds neither bin/ nor bench/*.py
const repoRoot = packageRoot();

/** HF parameter names and shapes of a Llama config, in checkpoint order. */
export function llamaTensors(c: Record<string, number | boolean>): Array<[string, number[]]> {
  const h = c.hidden_size as number,
    L = c.num_hidden_layers as number,
    nh = c.num_attention_heads as number;
  const kv = c.num_key_value_heads as number,
    I = c.intermediate_size as number,
    V = c.vocab_size as number;
  const hd = (c.head_dim as number | undefined) ?? h / nh;
  const out: Array<[string, number[]]> = [['model.embed_tokens.weight', [V, h]]];
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    out.push(
      [`${p}.input_layernorm.weight`, [h]],
      [`${p}.self_attn.q_proj.weight`, [nh * hd, h]],
      [`${p}.self_attn.k_proj.weight`, [kv * hd, h]],
      [`${p}.self_attn.v_proj.weight`, [kv * hd, h]],
      [`${p}.self_attn.o_proj.weight`, [h, nh * hd]],
      [`${p}.post_attention_layernorm.weight`, [h]],
      [`${p}.mlp.gate_proj.weight`, [I, h]],
      [`${p}.mlp.up_proj.weight`, [I, h]],
      [`${p}.mlp.down_proj.weight`, [h, I]],
    );
  }
  out.push(['model.norm.weight', [h]]);
  if (!c.tie_word_embeddings) out.push(['lm_head.weight', [V, h]]);
  return out;
}

const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);

/** Group tensors into shards of at most `maxBytes` bf16 bytes (a bigger tensor gets a shard of its own), as HF does. */
export function planShards(ts: Array<[string, number[]]>, maxBytes: number): Array<Array<[string, number[]]>> {
  const shards: Array<Array<[string, number[]]>> = [];
  let cur: Array<[string, number[]]> = [],
    bytes = 0;
  for (const t of ts) {
    const b = 2 * numel(t[1]);
    if (cur.length && bytes + b > maxBytes) {
      shards.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(t);
    bytes += b;
  }
  if (cur.length) shards.push(cur);
  return shards;
}

/** Elements generated at a time while writing (bounds the f32 temporaries of one tensor: 16M x 4 B x ~3). */
const GEN_CHUNK = 1 << 24;

/** One tensor's random bf16 bytes, generated in row chunks (HF init: linear / embedding ~ N(0, 0.02), norms 1). */
function* randomBf16(name: string, shape: number[]): Generator<Uint8Array> {
  const cols = shape.length > 1 ? shape[shape.length - 1]! : shape[0]!;
  const rows = numel(shape) / cols;
  const step = Math.max(1, Math.floor(GEN_CHUNK / cols));
  for (let r = 0; r < rows; r += step) {
    const n = Math.min(step, rows - r);
    const sh = shape.length > 1 ? [n, cols] : [cols];
    yield noGrad(() =>
      scope(() => tensorData(/norm/.test(name) ? ones(sh).to('bf16') : randn(sh).mul(0.02).to('bf16')).data),
    );
  }
}

/**
 * Write the random bf16 checkpoint shard by shard, each shard streamed tensor by tensor (chunk by chunk): at most one
 * chunk of one tensor exists in memory at a time, whatever the shard size.
 */
function writeCheckpoint(
  dir: string,
  raw: Record<string, unknown>,
  shardBytes: number,
  say: (s: string) => void,
): void {
  const ts = llamaTensors(raw as Record<string, number | boolean>);
  const shards = planShards(ts, shardBytes);
  const total = ts.reduce((a, t) => a + 2 * numel(t[1]), 0);
  mkdirSync(dirname(dir), { recursive: true });
  const fs = statfsSync(dirname(dir));
  const free = fs.bavail * fs.bsize;
  if (free < total * 1.05)
    throw new MedloraError(
      `bench:scale: ${dirname(dir)} has ${(free / 1e9).toFixed(1)} GB free; the checkpoint needs ${(total / 1e9).toFixed(1)} GB (choose --dir)`,
    );
  mkdirSync(dir, { recursive: true });
  manualSeed(0);
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const file = shardFileName(i + 1, shards.length);
    // the header needs only names, dtypes, shapes and byte lengths; the data is generated while the file is written
    const stubs: Record<string, TensorData> = {};
    for (const [name, shape] of shard)
      stubs[name] = { dtype: 'BF16', shape, data: { byteLength: 2 * numel(shape) } as Uint8Array };
    const { header, order } = buildHeader(stubs, { format: 'pt' });
    const shapes = new Map(shard);
    function* parts(): Generator<Uint8Array> {
      yield header;
      for (const name of order) yield* randomBf16(name, shapes.get(name)!);
    }
    writeFileAtomic(join(dir, file), parts());
    for (const [name] of shard) weightMap[name] = file;
    say(`  ${file}: ${shard.length} tensors, ${(shard.reduce((a, t) => a + 2 * numel(t[1]), 0) / 1e9).toFixed(2)} GB`);
  });
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify({ ...raw, torch_dtype: 'bfloat16' }, null, 2)}\n`);
  writeFileSync(
    join(dir, INDEX_FILE),
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`,
  );
}

/** Run a child and poll its peak resident set (VmHWM) from /proc until it exits. */
function runWithPeak(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  log?: (s: string) => void,
): Promise<{ code: number | null; stdout: string; stderr: string; peakKb: number }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '',
      peakKb = 0,
      rssKb = 0,
      polls = 0;
    const t0 = performance.now();
    // the timeline (--log): each line of the child with the time since start and the resident set then
    const stamp = (): string =>
      `[${((performance.now() - t0) / 1000).toFixed(1)} s, RSS ${(rssKb / 1e6).toFixed(2)} GB, peak ${(peakKb / 1e6).toFixed(2)} GB]`;
    const lines = (d: Buffer): void => {
      if (log) for (const l of d.toString().split('\n')) if (l.trim()) log(`${stamp()} ${l.trim().slice(0, 300)}`);
    };
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      lines(d);
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      lines(d);
    });
    const poll = setInterval(() => {
      try {
        const st = readFileSync(`/proc/${p.pid}/status`, 'utf8');
        const m = /VmHWM:\s+(\d+)/.exec(st);
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
        rssKb = Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0);
        if (log && ++polls % 300 === 0) log(`${stamp()} (1-min load ${loadavg()[0]!.toFixed(1)})`);
      } catch {
        /* exited */
      }
    }, 100);
    p.on('close', (code) => {
      clearInterval(poll);
      resolve({ code, stdout, stderr, peakKb });
    });
  });
}

/**
 * `--parts L1,L2`: where one micro-batch's time goes at the real width, in this process: the Llama-3.1-8B config cut to
 * L decoder layers (random HF init in bf16, load-then-quantize to NF4 except lm_head, LoRA r8 on every projection and
 * lm_head, gradient checkpointing), one micro-batch of 2 recipe rows: forward + loss, backward, one 8-bit AdamW step,
 * each timed. Two depths give the per-layer cost (the difference) and the rest (embeddings, head, loss), so the
 * 32-layer micro-batch is extrapolated as rest + 32 x layer. (The loss here computes all positions' logits; the
 * trainer computes them at scored positions only, so the head part is an upper bound.)
 */
function parts(
  full: Record<string, unknown>,
  depths: number[],
  rows: Array<{ input_ids: number[]; labels: number[] }>,
  say: (s: string) => void,
): Record<string, unknown> {
  const pair = rows.slice(0, 2);
  const T = Math.max(...pair.map((r) => r.input_ids.length));
  const ids = tensor(
    pair.map((r) => [...r.input_ids, ...Array<number>(T - r.input_ids.length).fill(0)]),
    { dtype: 'i64' },
  );
  const labels = tensor(
    pair.map((r) => [...r.labels, ...Array<number>(T - r.labels.length).fill(-100)]),
    { dtype: 'i64' },
  );
  const out: Array<Record<string, number>> = [];
  for (const L of depths) {
    const t0 = performance.now();
    // HF init (linear / embedding ~ N(0, 0.02), norms 1) generated straight into bf16 by row chunks, so that no F32
    // copy of the 1 GB embedding / head exists (initModel would build the whole model in F32 first)
    const model = buildModel(
      parseModelConfig({ ...full, num_hidden_layers: L }, 'config (bench:scale --parts)').config,
    );
    manualSeed(0);
    noGrad(() => {
      for (const [key, { module, name, shape }] of declaredParameters(model)) {
        const t = scope(() => {
          if (/norm/.test(key)) return keep(ones(shape).to('bf16'));
          const cols = shape[shape.length - 1]!,
            rows = shape.length > 1 ? shape[0]! : 1,
            step = Math.max(1, Math.floor(GEN_CHUNK / cols));
          const chunks = [];
          for (let r = 0; r < rows; r += step)
            chunks.push(
              randn([Math.min(step, rows - r), cols])
                .mul(0.02)
                .to('bf16'),
            );
          return keep((chunks.length === 1 ? chunks[0]! : cat(chunks)).reshape(shape));
        });
        module.setParam(name, t);
      }
    });
    model.train(true);
    const init_s = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    quantizeModel(model, { skip: ['lm_head'] });
    const quant_s = (performance.now() - t1) / 1000;
    applyLora(model, {
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0.05,
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
    });
    model.gradientCheckpointing = true;
    const opt = createOptimizer(model.trainableParameters(), {
      name: 'paged_adamw_8bit',
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0,
    });
    const t2 = performance.now();
    const loss = causalLmLoss(model.forward(ids), labels).loss;
    const fwd_s = (performance.now() - t2) / 1000;
    const t3 = performance.now();
    loss.backward();
    const bwd_s = (performance.now() - t3) / 1000;
    const t4 = performance.now();
    opt.step(2.5e-5);
    opt.zeroGrad();
    const opt_s = (performance.now() - t4) / 1000;
    loss.dispose();
    opt.dispose();
    model.dispose();
    const r = { layers: L, tokens: 2 * T, init_s, quant_s, fwd_s, bwd_s, opt_s };
    say(`parts ${JSON.stringify(r)}`);
    out.push(r);
  }
  const res: Record<string, unknown> = { parts: out };
  if (out.length >= 2) {
    const [a, b] = [out[0]!, out[out.length - 1]!];
    const per = (k: string): number => (b[k]! - a[k]!) / (b.layers! - a.layers!);
    const L = full.num_hidden_layers as number;
    const est: Record<string, number> = {};
    // a noisy (negative) per-layer difference is not extrapolated: the estimate is then the deeper run's own time
    for (const k of ['fwd_s', 'bwd_s', 'opt_s']) est[k] = b[k]! + (L - b.layers!) * Math.max(0, per(k));
    res.per_layer = { fwd_s: per('fwd_s'), bwd_s: per('bwd_s'), opt_s: per('opt_s') };
    res.estimate_32_layers_micro_batch = est;
    say(
      `per layer: forward ${per('fwd_s').toFixed(1)} s, backward ${per('bwd_s').toFixed(1)} s; ${L}-layer micro-batch of 2 rows (estimate): ` +
        `forward ${est.fwd_s!.toFixed(0)} s, backward ${est.bwd_s!.toFixed(0)} s, optimizer ${est.opt_s!.toFixed(1)} s; ` +
        `the recipe's update = 4 micro-batches + 1 optimizer step ~ ${(4 * (est.fwd_s! + est.bwd_s!) + est.opt_s!).toFixed(0)} s`,
    );
  }
  return res;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2), {
    dir: 'string',
    dry: 'flag',
    json: 'flag',
    threads: 'number',
    'shard-gb': 'number',
    'keep-run': 'flag',
    'write-only': 'flag',
    log: 'flag',
    parts: 'string',
    'recipe-dir': 'string',
  });
  const json = Boolean(a.json);
  const say = (s: string): void => {
    if (json) console.error(s);
    else console.log(s);
  };
  const threads = (a.threads as number | undefined) ?? 2;
  setNumThreads(threads);
  const cfgFile = sharedPath('fixtures', 'hf', 'Llama-3.1-8B', 'config.json');
  if (!existsSync(cfgFile)) throw new MedloraError(`bench:scale: ${cfgFile} is missing (the Llama-3.1-8B config)`);
  const full = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  const dry = Boolean(a.dry);
  const raw = dry
    ? {
        ...full,
        hidden_size: 256,
        intermediate_size: 512,
        num_hidden_layers: 2,
        num_attention_heads: 8,
        num_key_value_heads: 2,
        head_dim: 32,
      }
    : full;
  const realTs = llamaTensors(full as Record<string, number | boolean>);
  const realBytes = realTs.reduce((s, t) => s + 2 * numel(t[1]), 0);
  say(
    `bench:scale${dry ? ' --dry (the 8B config at 2 layers x 256 wide)' : ''}: Llama-3.1-8B config, ${(realTs.reduce((s, t) => s + numel(t[1]), 0) / 1e9).toFixed(2)}B parameters, ` +
      `${(realBytes / 1e9).toFixed(1)} GB bf16 on disk; 1-min load ${loadavg()[0]!.toFixed(1)}`,
  );
  if (a.parts !== undefined) {
    const depths = String(a.parts).split(',').map(Number);
    if (!depths.every((d) => Number.isInteger(d) && d >= 1))
      throw new MedloraError(`bench:scale: --parts must be layer counts like 1,2, got ${String(a.parts)}`);
    const rows = readFileSync(
      (
        await prepare(
          'smollm2-135m',
          (a['recipe-dir'] as string | undefined) ?? '/tmp/medlora-recipe',
          RECIPE.rows,
          say,
        )
      ).rows,
      'utf8',
    )
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { input_ids: number[]; labels: number[] });
    const r = parts(raw, depths, rows, say);
    if (json) console.log(JSON.stringify(r));
    return;
  }
  const base = (a.dir as string | undefined) ?? '/tmp/medlora-scale';
  const dir = join(base, dry ? 'llama31-8b-dry' : 'llama31-8b');
  const shardBytes = ((a['shard-gb'] as number | undefined) ?? (dry ? 0.02 : 5)) * 1e9;
  if (!existsSync(join(dir, INDEX_FILE))) {
    say(`writing the random bf16 checkpoint to ${dir} (once) ...`);
    const t0 = performance.now();
    writeCheckpoint(dir, raw, shardBytes, say);
    say(`written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  if (a['write-only']) return;
  // the recipe's rows (bench:recipe writes them; SmolLM2 ids are valid ids of the 128256-token vocabulary)
  const rows = (
    await prepare('smollm2-135m', (a['recipe-dir'] as string | undefined) ?? '/tmp/medlora-recipe', RECIPE.rows, say)
  ).rows;
  const out = join(base, 'run');
  rmSync(out, { recursive: true, force: true });
  const cfg = {
    model: dir,
    output_dir: out,
    quantization: { load_in_4bit: true },
    data: { train: rows, format: 'tokenized', max_length: 400 },
    lora: {
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0.05,
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'],
    },
    training: {
      per_device_train_batch_size: 2,
      gradient_accumulation_steps: 4,
      max_steps: 1,
      learning_rate: 2.5e-5,
      warmup_steps: 0,
      optim: 'paged_adamw_8bit',
      bf16: true,
      gradient_checkpointing: true,
      logging_steps: 1,
      save_steps: null,
      eval_steps: null,
      shuffle: false,
      seed: 0,
    },
  };
  const cfgPath = join(base, 'scale.yaml');
  writeFileSync(cfgPath, `${JSON.stringify(cfg, null, 2)}\n`);
  say(`one optimizer step (2 x 4 rows, QLoRA NF4, bf16, checkpointing, paged 8-bit AdamW) through medlora train ...`);
  const t0 = performance.now();
  const r = await runWithPeak(
    process.execPath,
    [join(repoRoot, 'bin', 'medlora.js'), 'train', '--config', cfgPath, '--threads', String(threads), '--json'],
    { OMP_NUM_THREADS: String(threads) },
    a.log ? (l: string) => console.error(l) : undefined,
  );
  const total_s = (performance.now() - t0) / 1000;
  if (r.code !== 0)
    throw new MedloraError(
      `bench:scale: medlora train exited with ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  const events = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const done = events.find((e) => e.event === 'done');
  const notes = events.filter((e) => e.event === 'note').map((e) => e.message);
  const res = {
    dry,
    checkpoint: dir,
    checkpoint_gb: dry ? undefined : realBytes / 1e9,
    peak_rss_gb: (r.peakKb * 1024) / 1e9,
    step_s: done?.wall_s,
    total_s,
    load1_end: loadavg()[0],
    notes,
  };
  if (!a['keep-run']) rmSync(out, { recursive: true, force: true });
  if (json) {
    console.log(JSON.stringify(res));
    return;
  }
  for (const n of notes) say(`note: ${String(n)}`);
  say(
    `peak RSS ${res.peak_rss_gb.toFixed(2)} GB (goal <= 12 GB at the real shape); step ${typeof res.step_s === 'number' ? res.step_s.toFixed(1) : '?'} s; ` +
      `process ${total_s.toFixed(1)} s (load + quantize + step); 1-min load ${loadavg()[0]!.toFixed(1)}`,
  );
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

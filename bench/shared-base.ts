// `npm run bench:shared-base`: process memory (RSS) of serving N adapters over ONE base (src/model/share.ts, what
// `medlora serve --adapter a=... --adapter b=...` does) against N separate copies of the base (what it did before), each
// count measured in a fresh process so that no memory freed earlier is reused. Without --model a random Llama of
// about 28 MB (f32) and random LoRA adapters are made in a temp folder. --json prints one JSON object.
// Measure mode (internal): --measure shared|separate --model DIR --adapter DIR... prints {rss_start, rss_base, rss_end}.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { manualSeed, noGrad, randn, scope, setNumThreads } from '../src/tensor/index.js';
import { loadModel } from '../src/model/load.js';
import { initModel, saveModel } from '../src/model/init.js';
import { ownParameterBytes } from '../src/model/share.js';
import type { Module } from '../src/model/module.js';
import { loadAdapterShared, loadAnyAdapter, methodNamed } from '../src/adapt/methods/index.js';
import { isMain } from './entry.js';

export interface MemoryRow {
  adapters: number;
  /** RSS added by loading the base and the adapters, MB */
  shared_mb: number;
  separate_mb: number;
}
export interface MemoryReport {
  base_weights_mb: number;
  rows: MemoryRow[];
}

const MB = 2 ** 20;
const round = (b: number): number => Math.round((b / MB) * 10) / 10;

/** In this process: load the base and the adapters (shared or each on its own copy); RSS in bytes at each stage. */
function measure(mode: 'shared' | 'separate', model: string, adapters: string[]): Record<string, number> {
  setNumThreads(1);
  const rss = (): number => process.memoryUsage().rss;
  const rssStart = rss();
  const base = loadModel(model);
  const rssBase = rss();
  const held: Module[] = [base];
  for (const a of adapters) {
    if (mode === 'shared') held.push(loadAdapterShared(base, a).model);
    else {
      const m = loadModel(model);
      loadAnyAdapter(m, a);
      held.push(m);
    }
  }
  const out = { rss_start: rssStart, rss_base: rssBase, rss_end: rss(), base_bytes: ownParameterBytes(base) };
  for (const m of held.reverse()) m.dispose();
  return out;
}

/** Run measure() in a fresh node process. */
function measureFresh(mode: 'shared' | 'separate', model: string, adapters: string[]): Record<string, number> {
  const r = spawnSync(
    process.execPath,
    [fileURLToPath(import.meta.url), '--measure', mode, '--model', model, ...adapters.flatMap((a) => ['--adapter', a])],
    { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } },
  );
  if (r.status !== 0) throw new Error(`shared-base measure (${mode}) failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
}

/** A random Llama of about 28 MB (f32) and `n` random LoRA adapters over it, under `dir`. */
export function makeFixture(dir: string, n: number): { model: string; adapters: string[] } {
  const model = join(dir, 'model');
  const raw = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: 8000,
    hidden_size: 256,
    intermediate_size: 688,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 256,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
  };
  const m0 = initModel(raw, { seed: 3 });
  saveModel(m0, raw, model);
  m0.dispose();
  const adapters: string[] = [];
  for (let i = 0; i < n; i++) {
    const m = loadModel(model);
    methodNamed('lora').apply(m, {
      r: 8,
      lora_alpha: 16,
      lora_dropout: 0,
      target_modules: ['q_proj', 'v_proj'],
    } as never);
    manualSeed(100 + i);
    noGrad(() => {
      for (const [, p] of m.trainableParameters()) {
        const r = scope(() => randn(p.shape).mul(0.1));
        p.add_(r);
        r.dispose();
      }
    });
    const dir2 = join(dir, `adapter-${i}`);
    methodNamed('lora').save(m, dir2, { base_model_name_or_path: model });
    m.dispose();
    adapters.push(dir2);
  }
  return { model, adapters };
}

/** RSS for each adapter count, shared base vs separate copies, every measurement in a fresh process. */
export function sharedBaseMemory(model: string, adapters: string[], counts: number[]): MemoryReport {
  let baseBytes = 0;
  const rows = counts.map((n) => {
    if (n > adapters.length) throw new Error(`shared-base: ${n} adapters asked, ${adapters.length} given`);
    const s = measureFresh('shared', model, adapters.slice(0, n));
    const p = measureFresh('separate', model, adapters.slice(0, n));
    baseBytes = s.base_bytes!;
    return {
      adapters: n,
      shared_mb: round(s.rss_end! - s.rss_start!),
      separate_mb: round(p.rss_end! - p.rss_start!),
    };
  });
  return { base_weights_mb: round(baseBytes), rows };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      measure: { type: 'string' },
      model: { type: 'string' },
      adapter: { type: 'string', multiple: true },
      counts: { type: 'string', default: '1,2,4' },
      json: { type: 'boolean' },
    },
  });
  if (values.measure) {
    const mode = values.measure === 'separate' ? 'separate' : 'shared';
    console.log(JSON.stringify(measure(mode, values.model!, values.adapter ?? [])));
    return;
  }
  const counts = values.counts.split(',').map(Number);
  let tmp: string | undefined;
  let model = values.model;
  let adapters = values.adapter ?? [];
  if (!model) {
    tmp = mkdtempSync(join(tmpdir(), 'medlora-bench-shared-'));
    ({ model, adapters } = makeFixture(tmp, Math.max(...counts)));
  }
  try {
    const r = sharedBaseMemory(model, adapters, counts);
    if (values.json) console.log(JSON.stringify(r));
    else {
      console.log(`base weights: ${r.base_weights_mb} MB (${model})`);
      console.log('adapters | RSS, one shared base | RSS, a base copy per adapter');
      for (const x of r.rows)
        console.log(`${String(x.adapters).padStart(8)} | ${x.shared_mb} MB | ${x.separate_mb} MB`);
    }
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await main();

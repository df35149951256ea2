// `npm run bench:llamacpp`: extraction-style greedy generation, medlora `generateIds` (batch 8, KV cache: what `eval` /
// `extract` call) against llama.cpp (node-llama-cpp's prebuilt CPU build) running the same model exported by
// `exportGguf` to GGUF f32, over the same N prompts in one run. Prints records/s and generated tokens/s per engine and
// how many records got identical ids. Model and prompts are bench:recipe's (`prepare`: a random checkpoint of the
// smollm2-135m shape with the SmolLM2 tokenizer, DrugBank DDI sentences in the Alpaca prompt).
// llama.cpp settings: f32 KV cache, no flash attention (as the export tests, so both compute in f32), one sequence
// per prompt in one context of `--batch` sequences decoded together (llama.cpp's batched decoding), the same thread
// count (default 1: on this shared 2-core machine ggml's spinning thread pool with 2 threads took 30 s where 1 thread
// took 2.7 s for the same two prompts). Times exclude loading (medlora: loadModel; llama.cpp: loadModel +
// createContext). `--reps 2` alternates which engine runs first.
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../src/tensor/index.js';
import { MedloraError } from '../src/util/errors.js';
import { prepare } from './recipe.js';
import { parseArgs } from './train.js';

interface EngineResult {
  engine: string;
  records: number;
  wall_s: number;
  records_per_s: number;
  generated_tokens: number;
  gen_tok_per_s: number;
  load1: number;
}

function result(engine: string, ids: number[][], wall: number): EngineResult {
  const gen = ids.reduce((a, r) => a + r.length, 0);
  return {
    engine,
    records: ids.length,
    wall_s: Math.round(wall * 1000) / 1000,
    records_per_s: Math.round((1000 * ids.length) / wall) / 1000,
    generated_tokens: gen,
    gen_tok_per_s: Math.round((100 * gen) / wall) / 100,
    load1: Math.round(loadavg()[0]! * 10) / 10,
  };
}

/** medlora: generateIds over all prompts (batch `batch`, KV cache); ids include the EOS when one ends a record. */
async function medlora(model: string, prompts: number[][], batch: number, maxNew: number, eos: number[]) {
  const { loadModel } = await import('../src/model/load.js');
  const { generateIds } = await import('../src/generate/generate.js');
  const m = loadModel(model, { dtype: 'f32' });
  try {
    const t0 = performance.now();
    const res = generateIds(m, prompts, { maxNewTokens: maxNew, batchSize: batch, eosIds: eos, padId: eos[0]! });
    const wall = (performance.now() - t0) / 1000;
    const ids = res.map((r) => (r.finishReason === 'eos' ? [...r.ids, eos[0]!] : r.ids));
    return { ids, r: result('medlora generateIds', ids, wall) };
  } finally {
    m.dispose();
  }
}

/** llama.cpp: `batch` sequences of one context decoded concurrently; each stops at EOS or `maxNew` tokens. */
async function llamaCpp(gguf: string, prompts: number[][], batch: number, maxNew: number, eos: number[], t: number) {
  const nlc = await import('node-llama-cpp');
  const llama = await nlc.getLlama({
    gpu: false,
    build: 'never',
    logLevel: nlc.LlamaLogLevel.error,
    progressLogs: false,
  });
  const model = await llama.loadModel({ modelPath: gguf });
  const longest = Math.max(...prompts.map((p) => p.length));
  const ctx = await model.createContext({
    sequences: batch,
    contextSize: batch * (longest + maxNew + 8),
    batchSize: Math.max(512, longest),
    threads: t,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  try {
    const seqs = Array.from({ length: batch }, () => ctx.getSequence());
    const ids: number[][] = new Array<number[]>(prompts.length);
    const t0 = performance.now();
    for (let start = 0; start < prompts.length; start += batch) {
      const chunk = prompts.slice(start, start + batch);
      await Promise.all(
        chunk.map(async (p, j) => {
          const seq = seqs[j]!;
          await seq.clearHistory();
          const out: number[] = [];
          for await (const tok of seq.evaluate(p as never[], { temperature: 0 })) {
            out.push(tok as number);
            if (out.length >= maxNew || eos.includes(tok as number)) break;
          }
          ids[start + j] = out;
        }),
      );
    }
    const wall = (performance.now() - t0) / 1000;
    return { ids, r: result('llama.cpp (node-llama-cpp)', ids, wall) };
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2), {
    json: 'flag',
    shape: 'string',
    dir: 'string',
    records: 'number',
    batch: 'number',
    'max-new-tokens': 'number',
    threads: 'number',
    reps: 'number',
  });
  const shape = (a.shape as string | undefined) ?? 'smollm2-135m';
  const dir = (a.dir as string | undefined) ?? '/tmp/medlora-recipe';
  const records = (a.records as number | undefined) ?? 8;
  const batch = (a.batch as number | undefined) ?? 8;
  const maxNew = (a['max-new-tokens'] as number | undefined) ?? 16;
  const threads = (a.threads as number | undefined) ?? 1;
  const json = Boolean(a.json);
  const say = (s: string): void => {
    if (!json) console.log(s);
  };
  if (!(records >= 1 && batch >= 1 && maxNew >= 1))
    throw new MedloraError('bench:llamacpp: --records, --batch, --max-new-tokens >= 1');
  setNumThreads(threads);
  const p = await prepare(shape, dir, Math.max(records, 8), say);
  const prompts = readFileSync(p.prompts, 'utf8')
    .trim()
    .split('\n')
    .slice(0, records)
    .map((l) => (JSON.parse(l) as { input_ids: number[] }).input_ids);
  const cfg = JSON.parse(readFileSync(join(p.model, 'config.json'), 'utf8')) as { eos_token_id: number };
  const eos = [cfg.eos_token_id];
  const gguf = join(dir, `${shape}-f32.gguf`);
  if (!existsSync(gguf)) {
    say(`exporting ${p.model} to ${gguf} (f32, once) ...`);
    const { exportGguf } = await import('../src/export/gguf-model.js');
    const t0 = performance.now();
    const r = exportGguf({ model: p.model, out: gguf, type: 'f32' });
    say(
      `  ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  const mean = prompts.reduce((s, q) => s + q.length, 0) / prompts.length;
  say(
    `${records} prompts (mean ${mean.toFixed(0)} tokens), batch ${batch}, up to ${maxNew} new tokens, ${threads} threads, f32`,
  );
  // engines alternate (medlora first, then llama.cpp first on the next rep), as bench:recipe does
  const reps = (a.reps as number | undefined) ?? 1;
  const runs: Array<{ rep: number; results: EngineResult[]; ratio: number; agreement: Record<string, number> }> = [];
  for (let rep = 0; rep < reps; rep++) {
    let m: Awaited<ReturnType<typeof medlora>>, l: Awaited<ReturnType<typeof llamaCpp>>;
    if (rep % 2 === 0) {
      m = await medlora(p.model, prompts, batch, maxNew, eos);
      l = await llamaCpp(gguf, prompts, batch, maxNew, eos, threads);
    } else {
      l = await llamaCpp(gguf, prompts, batch, maxNew, eos, threads);
      m = await medlora(p.model, prompts, batch, maxNew, eos);
    }
    const same = prompts.filter((_, i) => JSON.stringify(m.ids[i]) === JSON.stringify(l.ids[i])).length;
    const prefix = prompts.map((_, i) => {
      let k = 0;
      while (k < m.ids[i]!.length && m.ids[i]![k] === l.ids[i]![k]) k++;
      return k;
    });
    const agreement = {
      identical_records: same,
      records,
      mean_common_prefix: Math.round((100 * prefix.reduce((s, k) => s + k, 0)) / records) / 100,
    };
    const ratio = Math.round((100 * m.r.wall_s) / l.r.wall_s) / 100;
    runs.push({ rep, results: rep % 2 === 0 ? [m.r, l.r] : [l.r, m.r], ratio, agreement });
    if (json) continue;
    say(`rep ${rep + 1} of ${reps} (${rep % 2 === 0 ? 'medlora first' : 'llama.cpp first'}):`);
    for (const r of [m.r, l.r])
      say(
        `  ${r.engine}: ${r.records} records in ${r.wall_s} s = ${r.records_per_s} records/s, ${r.generated_tokens} tokens = ${r.gen_tok_per_s} tok/s (1-min load ${r.load1})`,
      );
    say(`  medlora time / llama.cpp time: ${ratio}x`);
    say(
      `  ids: ${same} of ${records} records identical; mean common prefix ${agreement.mean_common_prefix} tokens (random weights: near-ties in the logits can flip greedy choices between f32 engines)`,
    );
  }
  if (json) console.log(JSON.stringify({ shape, threads, batch, max_new_tokens: maxNew, runs }));
}

main().catch((e: unknown) => {
  console.error(e instanceof MedloraError ? `bench:llamacpp: ${e.message}` : e);
  process.exit(1);
});

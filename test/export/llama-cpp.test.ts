// GGUF export checked by llama.cpp itself (node-llama-cpp's prebuilt CPU build of llama.cpp): the exported files load,
// and llama.cpp's greedy token ids equal medlora's own greedy ids (and, for stories260K, the ids Hugging Face
// transformers produced: expected_generation.json); q8_0 is checked on next-token log-probabilities within a stated
// tolerance; a LoRA-only GGUF applied by llama.cpp to the base GGUF gives the merged export's ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gguf as readGguf } from '@huggingface/gguf';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportGguf, type ExportType } from '../../src/export/gguf-model.js';
import { loadModel } from '../../src/model/load.js';
import { initModel, saveModel } from '../../src/model/init.js';
import { loadAdapter } from '../../src/adapt/peft-io.js';
import { generateIds } from '../../src/generate/generate.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { noGrad, scope, setNumThreads, tensor } from '../../src/tensor/index.js';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { makeByteTokenizer, makeStoriesTokenizer } from './fixtures.js';

setNumThreads(1);

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;

/** llama.cpp through node-llama-cpp's prebuilt binary (never built or downloaded here), or why it is unavailable. */
async function openLlama(): Promise<{ llama: Llama } | { reason: string }> {
  try {
    const nlc = await import('node-llama-cpp');
    return {
      llama: await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error, progressLogs: false }),
    };
  } catch (e) {
    return { reason: `node-llama-cpp cannot load llama.cpp here: ${(e as Error).message.split('\n')[0]}` };
  }
}

const opened = hasShared() ? await openLlama() : { reason: 'no ../shared fixtures (set MEDLORA_SHARED)' };
const llama = 'llama' in opened ? opened.llama : undefined;
const skip: string | false = 'reason' in opened ? opened.reason : false;
if (skip) console.log(`# SKIPPED llama.cpp checks: ${skip}`);

const tmp = mkdtempSync(join(tmpdir(), 'medlora-gguf-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const stories = (): string => sharedPath('fixtures', 'hf', 'stories260K-hf');
const ref = (name: string): string => sharedPath('fixtures', 'reference', name);

/**
 * llama.cpp keeps its KV cache in f16 and its CPU flash attention rounds Q to f16 by default (logits then differ from
 * f32 by ~5e-3); an f32 KV cache without flash attention keeps the comparison with medlora's f32 attention tight (~1e-5).
 */
const CTX = {
  contextSize: 256,
  batchSize: 256,
  threads: 1,
  flashAttention: false,
  experimentalKvCacheKeyType: 'F32',
  experimentalKvCacheValueType: 'F32',
} as const;

interface Expected {
  greedy: Array<{ prompt_ids: number[]; greedy_new_ids: number[] }>;
}

/** llama.cpp greedy continuation of each prompt (one context, history cleared between prompts). */
async function llamaGreedy(file: string, prompts: number[][], n: number, lora?: string): Promise<number[][]> {
  const model = await llama!.loadModel({ modelPath: file });
  try {
    const ctx = await model.createContext({ ...CTX, ...(lora ? { lora: { adapters: [{ filePath: lora }] } } : {}) });
    const seq = ctx.getSequence();
    const out: number[][] = [];
    for (const p of prompts) {
      await seq.clearHistory();
      const ids: number[] = [];
      for await (const t of seq.evaluate(p as never[], { temperature: 0 })) {
        ids.push(t as number);
        if (ids.length >= n) break;
      }
      out.push(ids);
    }
    await ctx.dispose();
    return out;
  } finally {
    await model.dispose();
  }
}

/** llama.cpp's next-token probabilities after `prompt` (temperature 1, no top-k / top-p cut). */
async function llamaProbs(file: string, prompt: number[], vocab: number): Promise<Float64Array> {
  const model = await llama!.loadModel({ modelPath: file });
  try {
    const ctx = await model.createContext(CTX);
    const seq = ctx.getSequence();
    const items = prompt.map((t, i) =>
      i === prompt.length - 1
        ? [t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }]
        : t,
    );
    const res = await seq.controlledEvaluate(items as never);
    const probs = new Float64Array(vocab);
    const last = res[prompt.length - 1] as { next?: { probabilities?: Map<number, number> } } | undefined;
    for (const [tok, p] of last?.next?.probabilities ?? []) probs[tok] = p;
    await ctx.dispose();
    return probs;
  } finally {
    await model.dispose();
  }
}

/** medlora's greedy continuation (the base model, with the adapter applied as LoRA wrappers when given). */
function medloraGreedy(dir: string, prompts: number[][], n: number, adapter?: string): number[][] {
  const m = loadModel(dir, { dtype: 'f32' });
  try {
    if (adapter) loadAdapter(m, adapter);
    return generateIds(m, prompts, { maxNewTokens: n, eosIds: [] }).map((r) => r.ids);
  } finally {
    m.dispose();
  }
}

function medloraLogProbs(dir: string, prompt: number[]): Float64Array {
  const m = loadModel(dir, { dtype: 'f32' });
  try {
    const logits = scope(() =>
      noGrad(() => m.forward(tensor([prompt], { dtype: 'i64' })))
        .select(1, prompt.length - 1)
        .reshape([-1])
        .toNumbers(),
    );
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((a, v) => a + Math.exp(v - max), 0));
    return Float64Array.from(logits, (v) => v - lse);
  } finally {
    m.dispose();
  }
}

function exportTo(
  name: string,
  o: { model: string; type: ExportType; tokenizer?: string; adapter?: string; loraOnly?: boolean },
): string {
  const out = join(tmp, name);
  const t0 = Date.now();
  const r = exportGguf({ ...o, out });
  console.log(
    `  exported ${name}: ${r.tensors} tensors ${JSON.stringify(r.byType)}, ${r.bytes} bytes, ${Date.now() - t0} ms`,
  );
  return out;
}

function firstDiff(a: number[], b: number[]): string {
  const i = a.findIndex((v, k) => v !== b[k]);
  return i < 0 && a.length === b.length
    ? 'identical'
    : `first difference at ${i < 0 ? Math.min(a.length, b.length) : i}`;
}

let storiesTok: string | undefined;
function storiesTokenizer(): string {
  if (!storiesTok) {
    storiesTok = join(tmp, 'stories-tok');
    makeStoriesTokenizer(storiesTok);
  }
  return storiesTok;
}

for (const type of ['f32', 'f16'] as const) {
  test(
    `stories260K ${type}: llama.cpp greedy ids equal medlora's and transformers' (2 prompts x 120 tokens)`,
    { skip },
    async () => {
      const file = exportTo(`stories-${type}.gguf`, { model: stories(), tokenizer: storiesTokenizer(), type });
      const exp = (JSON.parse(readFileSync(join(stories(), 'expected_generation.json'), 'utf8')) as Expected).greedy;
      const prompts = exp.map((g) => g.prompt_ids);
      const n = 120;
      const fromLlama = await llamaGreedy(file, prompts, n);
      const fromMedlora = medloraGreedy(stories(), prompts, n);
      prompts.forEach((_, i) => {
        console.log(
          `  prompt ${i}: llama.cpp vs medlora ${firstDiff(fromLlama[i]!, fromMedlora[i]!)}; vs transformers ${firstDiff(fromLlama[i]!, exp[i]!.greedy_new_ids.slice(0, n))}`,
        );
        assert.deepEqual(fromLlama[i], fromMedlora[i]);
        assert.deepEqual(fromLlama[i], exp[i]!.greedy_new_ids.slice(0, n));
      });
    },
  );
}

test(
  'stories260K: llama.cpp tokenizes text as medlora does (SentencePiece scores from merge ranks)',
  { skip },
  async () => {
    const file = exportTo('stories-tok.gguf', { model: stories(), tokenizer: storiesTokenizer(), type: 'f16' });
    const tok = loadTokenizer(storiesTokenizer());
    const model = await llama!.loadModel({ modelPath: file });
    try {
      const texts = [
        'Once upon a time, there was a little girl named Lily.',
        'She said: "I can\'t find my red ball!" Tom laughed.',
        'The sun was big and warm. 123 birds flew  away\nover the tall trees.',
        'Ünïcode: ü, é and 猫',
      ];
      for (const text of texts) {
        const mine = tok.encode(text, { addSpecialTokens: false });
        const theirs = [...model.tokenize(text)] as number[];
        console.log(`  ${JSON.stringify(text.slice(0, 30))}: ${mine.length} tokens, ${firstDiff(theirs, mine)}`);
        assert.deepEqual(theirs, mine);
      }
    } finally {
      await model.dispose();
    }
  },
);

/**
 * Compare llama.cpp's next-token probabilities with medlora's log-softmax as logits up to a constant: llama.cpp's
 * sampler hands back a renormalised subset, so each token's log-probability is taken relative to the top token's.
 * Returns the max |difference| over the tokens medlora gives p > 1e-3.
 */
function maxRelLogProbDiff(p: Float64Array, want: Float64Array): { maxDiff: number; checked: number } {
  let top = 0;
  for (let t = 1; t < want.length; t++) if (want[t]! > want[top]!) top = t;
  assert.ok(p[top]! > 0, `llama.cpp gives no probability to medlora's top token ${top}`);
  let maxDiff = 0,
    checked = 0;
  for (let t = 0; t < want.length; t++) {
    if (Math.exp(want[t]!) < 1e-3) continue;
    checked++;
    assert.ok(p[t]! > 0, `token ${t} has p=${Math.exp(want[t]!)} in medlora but no probability from llama.cpp`);
    maxDiff = Math.max(maxDiff, Math.abs(Math.log(p[t]!) - Math.log(p[top]!) - (want[t]! - want[top]!)));
  }
  return { maxDiff, checked };
}

// q8_0 rounds every weight to 8 bits per block of 32 (ffn_down, whose rows of 172 are not a multiple of 32, stays f16),
// and llama.cpp also quantizes the activations entering each q8_0 matmul to 8 bits. Reference for the size of the effect:
// transformers with the weights passed through gguf-py's q8_0 quantizer moves these logits (relative to the top token,
// tokens with p > 1e-3) by up to 0.126; llama.cpp's q8_0 measured 0.18. Tolerance 0.3; the f32 export meets 1e-4
// (measured 7e-6), which shows the comparison itself is tight.
test(
  "stories260K q8_0: next-token logits (relative to the top token) within 0.3 of medlora's; f32 export within 1e-4",
  { skip },
  async () => {
    const exp = (JSON.parse(readFileSync(join(stories(), 'expected_generation.json'), 'utf8')) as Expected).greedy;
    const prompt = [...exp[0]!.prompt_ids, ...exp[0]!.greedy_new_ids.slice(0, 20)];
    const want = medloraLogProbs(stories(), prompt);
    for (const [type, tol] of [
      ['f32', 1e-4],
      ['q8_0', 0.3],
    ] as const) {
      const file = exportTo(`stories-${type}-probs.gguf`, { model: stories(), tokenizer: storiesTokenizer(), type });
      const { maxDiff, checked } = maxRelLogProbDiff(await llamaProbs(file, prompt, want.length), want);
      console.log(
        `  ${type}: max |logit diff to top (llama.cpp) - (medlora)| = ${maxDiff.toExponential(2)} over ${checked} tokens (tolerance ${tol})`,
      );
      assert.ok(checked > 3);
      assert.ok(maxDiff <= tol, `${type}: ${maxDiff} > ${tol}`);
    }
  },
);

// llama-tiny (random weights) + its PEFT adapter (r 4 on every projection and lm_head), paired with a byte-level BPE.
const tinyPrompts = [
  [1, 138, 44, 213, 191, 251, 113],
  [1, 62, 186, 233, 119, 80],
];

test(
  "llama-tiny + LoRA merged (f32): llama.cpp greedy ids equal medlora's base + adapter; LoRA-only GGUF on the base GGUF gives the same",
  { skip },
  async () => {
    const tokDir = join(tmp, 'byte-tok-256');
    makeByteTokenizer(tokDir, 256);
    const merged = exportTo('tiny-merged.gguf', {
      model: ref('llama-tiny'),
      adapter: join(ref('llama-tiny'), 'adapter'),
      tokenizer: tokDir,
      type: 'f32',
    });
    const base = exportTo('tiny-base.gguf', { model: ref('llama-tiny'), tokenizer: tokDir, type: 'f32' });
    const lora = exportTo('tiny-lora.gguf', {
      model: ref('llama-tiny'),
      adapter: join(ref('llama-tiny'), 'adapter'),
      type: 'f32',
      loraOnly: true,
    });
    const n = 24;
    const want = medloraGreedy(ref('llama-tiny'), tinyPrompts, n, join(ref('llama-tiny'), 'adapter'));
    const wantBase = medloraGreedy(ref('llama-tiny'), tinyPrompts, n);
    const fromMerged = await llamaGreedy(merged, tinyPrompts, n);
    const fromLora = await llamaGreedy(base, tinyPrompts, n, lora);
    const fromBase = await llamaGreedy(base, tinyPrompts, n);
    tinyPrompts.forEach((_, i) => {
      console.log(
        `  prompt ${i}: merged ${firstDiff(fromMerged[i]!, want[i]!)}, base + --lora ${firstDiff(fromLora[i]!, want[i]!)}, base ${firstDiff(fromBase[i]!, wantBase[i]!)}`,
      );
    });
    assert.deepEqual(fromMerged, want);
    assert.deepEqual(fromLora, fromMerged);
    assert.deepEqual(fromBase, wantBase);
    assert.notDeepEqual(
      want,
      wantBase,
      'the adapter must change the greedy ids, or this test could not tell merged from base',
    );
  },
);

test(
  'rsLoRA adapter as LoRA-only GGUF: adapter.lora.alpha folds alpha / sqrt(r); llama.cpp base + --lora equals medlora base + adapter',
  { skip },
  async () => {
    // the llama-tiny adapter with use_rslora: scaling alpha / sqrt(r) = 8 / 2 = 4 instead of alpha / r = 2
    const ad = join(tmp, 'rslora-adapter');
    mkdirSync(ad, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(ref('llama-tiny'), 'adapter', 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(join(ad, 'adapter_config.json'), JSON.stringify({ ...cfg, use_rslora: true }));
    copyFileSync(
      join(ref('llama-tiny'), 'adapter', 'adapter_model.safetensors'),
      join(ad, 'adapter_model.safetensors'),
    );
    const tokDir = join(tmp, 'byte-tok-rs');
    makeByteTokenizer(tokDir, 256);
    const base = exportTo('rs-base.gguf', { model: ref('llama-tiny'), tokenizer: tokDir, type: 'f32' });
    const lora = exportTo('rs-lora.gguf', { model: ref('llama-tiny'), adapter: ad, type: 'f32', loraOnly: true });
    const md = (await readGguf(lora, { allowLocalFile: true })).metadata as Record<string, unknown>;
    assert.deepEqual([md['general.type'], md['adapter.type'], md['adapter.lora.alpha']], ['adapter', 'lora', 16]);
    const n = 24;
    const want = medloraGreedy(ref('llama-tiny'), tinyPrompts, n, ad);
    const plain = medloraGreedy(ref('llama-tiny'), tinyPrompts, n, join(ref('llama-tiny'), 'adapter'));
    const got = await llamaGreedy(base, tinyPrompts, n, lora);
    tinyPrompts.forEach((_, i) => console.log(`  prompt ${i}: ${firstDiff(got[i]!, want[i]!)}`));
    assert.deepEqual(got, want);
    assert.notDeepEqual(
      want,
      plain,
      'rsLoRA scaling must change the ids, or this test could not tell the two scalings apart',
    );
  },
);

test(
  "gpt2-tiny (Conv1D weights transposed, learned positions, tied output) + c_attn LoRA (fan_in_fan_out): llama.cpp ids equal medlora's, merged and LoRA-only",
  { skip },
  async () => {
    const dir = ref('gpt2-tiny');
    const adapter = join(dir, 'adapter');
    const tokDir = join(tmp, 'byte-tok-gpt2');
    makeByteTokenizer(tokDir, 320);
    const base = exportTo('gpt2-base.gguf', { model: dir, tokenizer: tokDir, type: 'f32' });
    const merged = exportTo('gpt2-merged.gguf', { model: dir, adapter, tokenizer: tokDir, type: 'f32' });
    const lora = exportTo('gpt2-lora.gguf', { model: dir, adapter, type: 'f32', loraOnly: true });
    const n = 24;
    const wantBase = medloraGreedy(dir, tinyPrompts, n);
    const want = medloraGreedy(dir, tinyPrompts, n, adapter);
    const got = {
      base: await llamaGreedy(base, tinyPrompts, n),
      merged: await llamaGreedy(merged, tinyPrompts, n),
      lora: await llamaGreedy(base, tinyPrompts, n, lora),
    };
    tinyPrompts.forEach((_, i) =>
      console.log(
        `  prompt ${i}: base ${firstDiff(got.base[i]!, wantBase[i]!)}, merged ${firstDiff(got.merged[i]!, want[i]!)}, base + --lora ${firstDiff(got.lora[i]!, want[i]!)}`,
      ),
    );
    assert.deepEqual(got.base, wantBase);
    assert.deepEqual(got.merged, want);
    assert.deepEqual(got.lora, want);
    assert.notDeepEqual(want, wantBase);
  },
);

for (const name of ['llama3-tiny-tied', 'qwen2-tiny'] as const) {
  test(
    `${name} (f32${name === 'llama3-tiny-tied' ? ', llama3 rope_freqs, tied output, padded vocab' : ', arch qwen2 with q/k/v bias'}): llama.cpp greedy ids equal medlora's`,
    { skip },
    async () => {
      const dir = ref(name);
      const vocab = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
      const tokDir = join(tmp, `byte-tok-${name}`);
      makeByteTokenizer(tokDir, Math.min(vocab, 256));
      const file = exportTo(`${name}.gguf`, { model: dir, tokenizer: tokDir, type: 'f32' });
      const n = 24;
      const want = medloraGreedy(dir, tinyPrompts, n);
      const got = await llamaGreedy(file, tinyPrompts, n);
      tinyPrompts.forEach((_, i) => console.log(`  prompt ${i}: ${firstDiff(got[i]!, want[i]!)}`));
      assert.deepEqual(got, want);
    },
  );
}

// StableLM (arch stablelm): LayerNorm weights + biases, q/k/v biases, partial NEOX rotary (rope.dimension_count =
// partial_rotary_factor * head_dim = 4 of 16), GQA; test/fixtures/stablelm-tiny's expected_generation.json holds the
// greedy ids of transformers' StableLmForCausalLM, alone and with the PEFT adapter (make_stablelm_adapter.py).
const stablelmDir = (name = 'stablelm-tiny'): string => join(packageRoot(), 'test', 'fixtures', name);
interface StableLmExpected {
  prompts: number[][];
  n: number;
  greedy: number[][];
  greedy_lora: number[][];
}

test(
  "stablelm-tiny f32 and f16, and the parallel-residual variant: llama.cpp greedy ids equal medlora's and transformers'",
  { skip },
  async () => {
    const exp = JSON.parse(readFileSync(join(stablelmDir(), 'expected_generation.json'), 'utf8')) as StableLmExpected;
    const tokDir = join(tmp, 'byte-tok-128');
    makeByteTokenizer(tokDir, 128);
    const want = medloraGreedy(stablelmDir(), exp.prompts, exp.n);
    exp.prompts.forEach((_, i) =>
      console.log(`  prompt ${i}: medlora vs transformers ${firstDiff(want[i]!, exp.greedy[i]!)}`),
    );
    assert.deepEqual(want, exp.greedy);
    for (const type of ['f32', 'f16'] as const) {
      const file = exportTo(`stablelm-${type}.gguf`, { model: stablelmDir(), tokenizer: tokDir, type });
      const md = (await readGguf(file, { allowLocalFile: true })).metadata as Record<string, unknown>;
      assert.deepEqual(
        [md['general.architecture'], md['stablelm.rope.dimension_count'], md['stablelm.use_parallel_residual']],
        ['stablelm', 4, false],
      );
      const got = await llamaGreedy(file, exp.prompts, exp.n);
      exp.prompts.forEach((_, i) =>
        console.log(`  ${type} prompt ${i}: llama.cpp vs medlora ${firstDiff(got[i]!, want[i]!)}`),
      );
      assert.deepEqual(got, want);
    }
    const par = stablelmDir('stablelm-tiny-parallel');
    const file = exportTo('stablelm-parallel.gguf', { model: par, tokenizer: tokDir, type: 'f32' });
    const wantPar = medloraGreedy(par, exp.prompts, exp.n);
    const gotPar = await llamaGreedy(file, exp.prompts, exp.n);
    exp.prompts.forEach((_, i) => console.log(`  parallel prompt ${i}: ${firstDiff(gotPar[i]!, wantPar[i]!)}`));
    assert.deepEqual(gotPar, wantPar);
  },
);

test(
  'stablelm-tiny + LoRA: merged export and base + LoRA-only GGUF in llama.cpp give the ids of medlora and of transformers + PEFT',
  { skip },
  async () => {
    const exp = JSON.parse(readFileSync(join(stablelmDir(), 'expected_generation.json'), 'utf8')) as StableLmExpected;
    const adapter = join(stablelmDir(), 'adapter');
    const tokDir = join(tmp, 'byte-tok-128-lora');
    makeByteTokenizer(tokDir, 128);
    const merged = exportTo('stablelm-merged.gguf', { model: stablelmDir(), adapter, tokenizer: tokDir, type: 'f32' });
    const base = exportTo('stablelm-base.gguf', { model: stablelmDir(), tokenizer: tokDir, type: 'f32' });
    const lora = exportTo('stablelm-lora.gguf', { model: stablelmDir(), adapter, type: 'f32', loraOnly: true });
    const want = medloraGreedy(stablelmDir(), exp.prompts, exp.n, adapter);
    const got = {
      merged: await llamaGreedy(merged, exp.prompts, exp.n),
      lora: await llamaGreedy(base, exp.prompts, exp.n, lora),
    };
    exp.prompts.forEach((_, i) =>
      console.log(
        `  prompt ${i}: medlora vs transformers+peft ${firstDiff(want[i]!, exp.greedy_lora[i]!)}; merged ${firstDiff(got.merged[i]!, want[i]!)}, base + --lora ${firstDiff(got.lora[i]!, want[i]!)}`,
      ),
    );
    assert.deepEqual(want, exp.greedy_lora);
    assert.deepEqual(got.merged, want);
    assert.deepEqual(got.lora, want);
    assert.notDeepEqual(want, exp.greedy, 'the adapter must change the ids, or merged could not be told from base');
  },
);

test(
  'stablelm: the check can fail: a wrong rope.dimension_count (partial_rotary_factor 0.5, 8 of 16) changes llama.cpp ids',
  { skip },
  async () => {
    const exp = JSON.parse(readFileSync(join(stablelmDir(), 'expected_generation.json'), 'utf8')) as StableLmExpected;
    const wrong = join(tmp, 'stablelm-wrong-rope');
    mkdirSync(wrong, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(stablelmDir(), 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(wrong, 'config.json'), JSON.stringify({ ...cfg, partial_rotary_factor: 0.5 }));
    copyFileSync(join(stablelmDir(), 'model.safetensors'), join(wrong, 'model.safetensors'));
    const tokDir = join(tmp, 'byte-tok-128-wrong');
    makeByteTokenizer(tokDir, 128);
    const file = exportTo('stablelm-wrong-rope.gguf', { model: wrong, tokenizer: tokDir, type: 'f32' });
    const got = await llamaGreedy(file, exp.prompts, exp.n);
    exp.prompts.forEach((_, i) =>
      console.log(`  prompt ${i}: wrong rope vs transformers ${firstDiff(got[i]!, exp.greedy[i]!)}`),
    );
    assert.notDeepEqual(got, exp.greedy);
  },
);

test(
  'GPT-NeoX tokenizer (stablelm-zephyr-3b, pre-tokenizer "olmo"): llama.cpp tokenizes NFC text as medlora does; decomposed text differs, as the export note says',
  { skip },
  async () => {
    // a random 1-layer StableLM with Zephyr-3B's vocab_size (50304), only to carry the tokenizer into a GGUF
    const zephyr = sharedPath('fixtures', 'hf', 'stablelm-zephyr-3b');
    const dir = join(tmp, 'stablelm-zephyr-vocab');
    const cfg = {
      ...(JSON.parse(readFileSync(join(stablelmDir(), 'config.json'), 'utf8')) as Record<string, unknown>),
      vocab_size: 50304,
      hidden_size: 16,
      intermediate_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 2,
    };
    const m = initModel(cfg, { seed: 0 });
    try {
      saveModel(m, cfg, dir);
    } finally {
      m.dispose();
    }
    const out = join(tmp, 'stablelm-zephyr-vocab.gguf');
    const rep = exportGguf({ model: dir, tokenizer: zephyr, out, type: 'f16' });
    assert.equal(rep.vocab?.pre, 'olmo');
    assert.ok(
      rep.notes.some((n) => /NFC normalizer has no llama.cpp counterpart/.test(n)),
      rep.notes.join('; '),
    );
    const tok = loadTokenizer(zephyr);
    const model = await llama!.loadModel({ modelPath: out, vocabOnly: true });
    try {
      const texts = [
        'Patient received 500 mg of amoxicillin twice daily; no rash was observed.',
        "It's a test: don't    split   words 12345 and 3.14!\n\nNew paragraph\twith tab.",
        'def f(x):\n        return x ** 2  # indented code',
        'Ünïcode in NFC: café, naïve, 猫, emoji 🙂',
      ];
      for (const text of texts) {
        const mine = tok.encode(text, { addSpecialTokens: false });
        const theirs = [...model.tokenize(text)] as number[];
        console.log(`  ${JSON.stringify(text.slice(0, 30))}: ${mine.length} tokens, ${firstDiff(theirs, mine)}`);
        assert.deepEqual(theirs, mine);
      }
      const decomposed = 'cafe\u0301'; // NFC turns e + U+0301 into é for medlora; llama.cpp keeps the two code points
      const mine = tok.encode(decomposed, { addSpecialTokens: false });
      const theirs = [...model.tokenize(decomposed)] as number[];
      console.log(`  decomposed "café": medlora ${JSON.stringify(mine)}, llama.cpp ${JSON.stringify(theirs)}`);
      assert.notDeepEqual(theirs, mine);
    } finally {
      await model.dispose();
    }
  },
);

// Mistral with sliding_window 64 < max_position_embeddings 256 (test/fixtures/mistral-tiny). llama.cpp's llama graph
// has no sliding window and the converter writes context_length 256, so beyond 64 tokens llama.cpp would compute full
// attention. medlora refuses inputs past the window; the export writes context_length = 64 and a warning.
test(
  "mistral-tiny (sliding_window 64 < 256 positions): context_length = the window with a warning; llama.cpp ids equal medlora's within it",
  { skip },
  async () => {
    const dir = join(packageRoot(), 'test', 'fixtures', 'mistral-tiny');
    const tokDir = join(tmp, 'byte-tok-128-mistral');
    makeByteTokenizer(tokDir, 128);
    const out = join(tmp, 'mistral-tiny.gguf');
    const rep = exportGguf({ model: dir, tokenizer: tokDir, out, type: 'f32' });
    assert.equal(rep.contextLength, 64);
    assert.ok(
      rep.warnings.some((w) => /context_length set to sliding_window 64, not max_position_embeddings 256/.test(w)),
      rep.warnings.join('; '),
    );
    const md = (await readGguf(out, { allowLocalFile: true })).metadata as Record<string, unknown>;
    assert.equal(md['llama.context_length'], 64);
    const prompts = [
      [1, 13, 44, 113, 91, 51, 113],
      [1, 62, 86, 33, 119, 80],
    ];
    const n = 50; // 7 + 50 positions: inside the window
    const want = medloraGreedy(dir, prompts, n);
    const got = await llamaGreedy(out, prompts, n);
    prompts.forEach((_, i) => console.log(`  prompt ${i}: ${firstDiff(got[i]!, want[i]!)}`));
    assert.deepEqual(got, want);
    // past the window medlora refuses (there is nothing exact to compare llama.cpp's full attention with)
    assert.throws(() => medloraGreedy(dir, [prompts[0]!], 64), /exceed sliding_window 64/);
  },
);

test(
  "stablelm with tied embeddings (llama.cpp's stablelm graph requires output.weight): written as a copy; llama.cpp ids equal medlora's",
  { skip },
  async () => {
    const cfg = {
      ...(JSON.parse(readFileSync(join(stablelmDir(), 'config.json'), 'utf8')) as Record<string, unknown>),
      tie_word_embeddings: true,
      initializer_range: 0.2, // wider than HF's 0.02, so the logits are not near-ties
    };
    const dir = join(tmp, 'stablelm-tied');
    const m = initModel(cfg, { seed: 3 });
    try {
      saveModel(m, cfg, dir);
    } finally {
      m.dispose();
    }
    const tokDir = join(tmp, 'byte-tok-128-tied');
    makeByteTokenizer(tokDir, 128);
    const out = join(tmp, 'stablelm-tied.gguf');
    const rep = exportGguf({ model: dir, tokenizer: tokDir, out, type: 'f32' });
    assert.ok(rep.notes.some((n) => /output\.weight written as a copy of the embedding/.test(n)));
    const prompts = [
      [1, 13, 44, 113, 91, 51, 113],
      [1, 62, 86, 33, 119, 80],
    ];
    const n = 20;
    // llama.cpp stops at its end-of-generation token (</s> = 2 in the byte tokenizer); medlora is run without stops
    const want = medloraGreedy(dir, prompts, n).map((ids) => (ids.includes(2) ? ids.slice(0, ids.indexOf(2)) : ids));
    const got = await llamaGreedy(out, prompts, n);
    prompts.forEach((_, i) => console.log(`  prompt ${i}: ${got[i]!.length} ids, ${firstDiff(got[i]!, want[i]!)}`));
    assert.deepEqual(got, want);
  },
);

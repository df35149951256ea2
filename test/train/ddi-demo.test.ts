// A preset-shaped fine-tune on a slice of the DrugBank DDI sentences: configs/ddi-llama31-8b.yaml (LoRA on all seven
// projections + lm_head, paged 8-bit AdamW, bf16, gradient checkpointing) with --model pointing at a tiny Llama built
// here (random weights; a 768-token byte-level BPE trained on the training slice with the project's BPE trainer, so
// the logits stay small enough for CI) and a shortened schedule. Train and validation loss must fall, and
// report.html must hold both curves. The run directory is kept under $MEDLORA_DEMO_DIR when set (to look at it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { manualSeed, ones, randn, type Tensor } from '../../src/tensor/index.js';
import { writeSafetensors, type TensorData } from '../../src/io/safetensors.js';
import { trainBpe, writeTrainedTokenizer } from '../../src/tokenize/bpe-train.js';
import { renderTarget } from '../../src/data/tasks.js';
import type { MedRecord } from '../../src/data/schema.js';

const BIN = join(packageRoot(), 'bin', 'medlora.js');

/** A 2-layer Llama (hidden 64) with N(0, 0.02) weights and tied embeddings, plus a BPE tokenizer trained on `texts`. */
function tinyLlama(dir: string, texts: string[]): void {
  mkdirSync(dir, { recursive: true });
  const bpe = trainBpe(texts, { vocabSize: 768 });
  writeTrainedTokenizer(dir, bpe, { addBos: true });
  const V = 768,
    H = 64,
    I = 128,
    L = 2,
    heads = 4,
    kv = 2,
    hd = H / heads;
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      vocab_size: V,
      hidden_size: H,
      intermediate_size: I,
      num_hidden_layers: L,
      num_attention_heads: heads,
      num_key_value_heads: kv,
      max_position_embeddings: 512,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      hidden_act: 'silu',
      bos_token_id: bpe.vocab.get('<s>'),
      eos_token_id: bpe.vocab.get('</s>'),
      torch_dtype: 'float32',
    }),
  );
  manualSeed(0);
  const t: Record<string, TensorData> = {};
  const put = (k: string, x: Tensor): void => {
    t[k] = { dtype: 'F32', shape: [...x.shape], data: x.toBytes() };
    x.dispose();
  };
  put('model.embed_tokens.weight', randn([V, H]).mul(0.02));
  put('model.norm.weight', ones([H]));
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, ones([H]));
    put(`${p}.post_attention_layernorm.weight`, ones([H]));
    put(`${p}.self_attn.q_proj.weight`, randn([heads * hd, H]).mul(0.02));
    put(`${p}.self_attn.k_proj.weight`, randn([kv * hd, H]).mul(0.02));
    put(`${p}.self_attn.v_proj.weight`, randn([kv * hd, H]).mul(0.02));
    put(`${p}.self_attn.o_proj.weight`, randn([H, heads * hd]).mul(0.02));
    put(`${p}.mlp.gate_proj.weight`, randn([I, H]).mul(0.02));
    put(`${p}.mlp.up_proj.weight`, randn([I, H]).mul(0.02));
    put(`${p}.mlp.down_proj.weight`, randn([H, I]).mul(0.02));
  }
  writeSafetensors(join(dir, 'model.safetensors'), t);
}

test(
  'DDI preset on a DrugBank slice: train and validation loss fall; report.html has the curves',
  { skip: !hasShared() && 'needs ../shared' },
  () => {
    const work = process.env.MEDLORA_DEMO_DIR ?? mkdtempSync(join(tmpdir(), 'medlora-ddi-demo-'));
    mkdirSync(work, { recursive: true });
    // import the corpus with the project's importer, then take a slice: 256 train / 32 validation records
    const all = join(work, 'drugbank.jsonl');
    let r = spawnSync(
      process.execPath,
      [
        BIN,
        'data',
        'import',
        'drugbank-sentences',
        sharedPath('corpora', 'drugbank-ddi-sentences', 'Clean_drub_interactions.csv'),
        '--out',
        all,
        '--skip-invalid',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const lines = readFileSync(all, 'utf8').trim().split('\n');
    const trainLines = lines.slice(0, 256);
    writeFileSync(join(work, 'train.jsonl'), trainLines.join('\n') + '\n');
    writeFileSync(join(work, 'val.jsonl'), lines.slice(1000, 1032).join('\n') + '\n');
    const model = join(work, 'tiny-llama');
    const recs0 = trainLines.map((l) => JSON.parse(l) as MedRecord);
    tinyLlama(model, [...recs0.map((x) => x.input), ...recs0.map((x) => renderTarget(x))]);
    const out = join(work, 'run');
    r = spawnSync(
      process.execPath,
      [
        BIN,
        'train',
        '--config',
        join(packageRoot(), 'configs', 'ddi-llama31-8b.yaml'),
        '--model',
        model,
        '--output',
        out,
        '--data.train',
        join(work, 'train.jsonl'),
        '--data.validation',
        join(work, 'val.jsonl'),
        '--max_steps',
        '24',
        '--eval_steps',
        '8',
        '--save_steps',
        '12',
        '--logging_steps',
        '1',
        '--learning_rate',
        '3e-3',
        '--warmup_steps',
        '5',
        '--threads',
        '1',
        '--json',
        ...(existsSync(out) ? ['--resume', 'latest'] : []),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const start = events.find((e) => e.event === 'start')!;
    console.log(
      `  trainable ${String(start.trainable_params)} of ${String(start.total_params)}; optimizer state ${String(start.optimizer_state_bytes)} B (f32: ${String(start.optimizer_state_bytes_fp32)} B)`,
    );
    assert.ok(
      (start.optimizer_state_bytes as number) < 0.3 * (start.optimizer_state_bytes_fp32 as number),
      '8-bit state is under 30% of f32',
    );
    const recs = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss?: number; eval_loss?: number });
    const train = recs.filter((x) => x.loss !== undefined).map((x) => x.loss!);
    const evals = recs.filter((x) => x.eval_loss !== undefined).map((x) => x.eval_loss!);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `  train loss: first 5 mean ${mean(train.slice(0, 5)).toFixed(3)}, last 5 mean ${mean(train.slice(-5)).toFixed(3)}; eval: ${evals.map((e) => e.toFixed(3)).join(' -> ')}`,
    );
    assert.equal(evals.length, 3);
    assert.ok(mean(train.slice(-5)) < mean(train.slice(0, 5)) - 0.5, 'train loss falls');
    for (let i = 1; i < evals.length; i++)
      assert.ok(evals[i]! < evals[i - 1]!, 'validation loss falls at every evaluation');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const title of ['Loss', 'Validation loss', 'Learning rate', 'Gradient norm', 'Epoch'])
      assert.ok(html.includes(`>${title}`), title);
    assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), 'self-contained: no scripts, no external URLs');
  },
);

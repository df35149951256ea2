// max_position_embeddings is a hard limit: a training max_length above it is refused at setup (naming both values),
// and generation that reaches it stops cleanly with finish_reason "max_positions" and truncated: true, in the library
// result, `medlora extract` / `medlora generate` output, and eval's predictions. The extract scenario is the one that
// used to crash ("sampling: every token is masked out") once prompt + answer passed the positions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setNumThreads } from '../../src/tensor/index.js';
import type { MedRecord } from '../../src/data/schema.js';
import { generateIds } from '../../src/generate/generate.js';
import { encodeForEval, textRecord } from '../../src/infer/generate-answers.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { loadModel } from '../../src/model/load.js';
import { initModel, saveModel } from '../../src/model/init.js';
import { runCli } from '../eval/capture.js';
import { taskRecords, tinyFixture, writeRecords } from '../evalcli/tiny.js';

setNumThreads(1);

/** The tiny model with max_position_embeddings `n` (rotary: the weights do not depend on it). */
function shortModel(n: number): string {
  const fx = tinyFixture();
  const dir = join(fx.root, `model-pos${n}`);
  if (!existsSync(dir)) {
    cpSync(fx.model, dir, { recursive: true });
    const f = join(dir, 'config.json');
    writeFileSync(
      f,
      JSON.stringify({ ...(JSON.parse(readFileSync(f, 'utf8')) as object), max_position_embeddings: n }),
    );
  }
  return dir;
}

test('train: data.max_length above max_position_embeddings is refused before anything loads', async () => {
  const fx = tinyFixture();
  const data = writeRecords('pos-train.jsonl', taskRecords().chemicals as MedRecord[]);
  const cfg = join(fx.root, 'pos.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      model: shortModel(256),
      output_dir: join(fx.root, 'run-pos'),
      data: { train: data, max_length: 512 },
      training: { max_steps: 1 },
    }),
  );
  const r = await runCli(['train', '--config', cfg, '--quiet']);
  assert.equal(r.code, 1);
  assert.match(
    r.err,
    /^medlora train: error: data\.max_length 512 is above the model's max_position_embeddings 256 \(.*config\.json\); use at most 256$/,
  );
  assert.equal(existsSync(join(fx.root, 'run-pos', 'metrics.jsonl')), false);
  const d = await runCli(['train', '--config', cfg, '--dry-run']);
  assert.match(d.err, /data\.max_length 512 is above the model's max_position_embeddings 256/);
  // inference refuses the same
  const e = await runCli(['extract', 'x', '--model', shortModel(256), '--task', 'chemicals', '--max-length', '300']);
  assert.match(e.err, /^medlora extract: error: --max-length 300 is above the model's max_position_embeddings 256/);
});

test('extract past the positions: stops at max_position_embeddings with finish_reason max_positions, truncated, a warning, exit 0', async () => {
  const text = 'Cisplatin and lithium caused renal damage.';
  // room for 6 answer tokens after the prompt (~300 tokens: Alpaca template + the NER instruction in this small vocabulary)
  const fx = tinyFixture();
  const tok = loadTokenizer(fx.model);
  const promptLen = encodeForEval(textRecord('chemicals', '1', text), tok, { promptStyle: 'alpaca' }).promptLength;
  const model = shortModel(promptLen + 6);
  const r = await runCli([
    'extract',
    text,
    '--model',
    model,
    '--task',
    'chemicals',
    '--max-new-tokens',
    '64',
    '--no-constrain',
    '--quiet',
  ]);
  assert.equal(r.code, 0, r.err);
  const got = JSON.parse(r.out) as { finish_reason: string; truncated: boolean; output: string };
  console.log(
    `finish_reason ${got.finish_reason}, truncated ${got.truncated}, ${JSON.stringify(got.output).slice(0, 80)}`,
  );
  assert.equal(got.finish_reason, 'max_positions');
  assert.equal(got.truncated, true);
  assert.match(r.err, /warning: 1 answer\(s\) TRUNCATED at the model's max_position_embeddings/);
  // constrained (the default) too
  const c = await runCli([
    'extract',
    text,
    '--model',
    model,
    '--task',
    'chemicals',
    '--max-new-tokens',
    '64',
    '--quiet',
  ]);
  assert.equal(c.code, 0, c.err);
  assert.ok(['max_positions', 'eos'].includes((JSON.parse(c.out) as { finish_reason: string }).finish_reason));
  // eval: predictions and scores carry it
  const data = writeRecords('pos-eval.jsonl', taskRecords().chemicals as MedRecord[]);
  const out = join(tinyFixture().root, 'pos-eval');
  const ev = await runCli([
    'eval',
    '--model',
    model,
    '--data',
    data,
    '--out',
    out,
    '--json',
    '--no-constrain',
    '--no-loss',
    '--max-new-tokens',
    '64',
    '--quiet',
  ]);
  assert.equal(ev.code, 0, ev.err);
  const scores = JSON.parse(ev.out) as { hit_max_positions: number; records: number };
  const preds = readFileSync(join(out, 'predictions.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { finish_reason: string; truncated: boolean });
  assert.equal(scores.hit_max_positions, preds.filter((p) => p.finish_reason === 'max_positions').length);
  assert.ok(scores.hit_max_positions > 0);
  for (const p of preds) assert.equal(p.truncated, p.finish_reason !== 'eos');
});

test('generateIds: each row stops at its own position limit (left padding does not count); a longer prompt is an error', () => {
  const model = loadModel(shortModel(240));
  try {
    const res = generateIds(model, [Array.from({ length: 230 }, (_, i) => 5 + (i % 50)), [5, 6, 7]], {
      maxNewTokens: 20,
      eosIds: [],
      padId: 0,
    });
    assert.deepEqual(
      res.map((r) => [r.ids.length, r.finishReason, r.truncated]),
      [
        [10, 'max_positions', true],
        [20, 'length', true],
      ],
    );
    assert.throws(
      () => generateIds(model, [Array.from({ length: 241 }, () => 5)], { maxNewTokens: 2 }),
      /prompt 0 has 241 tokens, more than the model's max_position_embeddings 240/,
    );
  } finally {
    model.dispose();
  }
});

test('GPT-2 (learned positions): generation stops at n_positions instead of failing; generate --json shows it', async () => {
  const fx = tinyFixture();
  const dir = join(fx.root, 'gpt2-pos');
  const raw = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: 64,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    n_positions: 16,
    n_ctx: 16,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
    bos_token_id: 0,
    eos_token_id: 0,
    tie_word_embeddings: true,
  };
  const m = initModel(raw, { seed: 3 });
  saveModel(m, raw, dir);
  m.dispose();
  const r = await runCli([
    'generate',
    '--model',
    dir,
    '--ids',
    '1,2,3,4,5,6,7,8,9,10,11,12',
    '--ids',
    '1,2,3',
    '--max-new-tokens',
    '30',
    '--json',
  ]);
  assert.equal(r.code, 0, r.err);
  const rows = r.out
    .split('\n')
    .map((l) => JSON.parse(l) as { ids: number[]; finish_reason: string; truncated: boolean });
  for (const [i, row] of rows.entries()) {
    if (row.finish_reason === 'eos') continue;
    assert.equal(row.finish_reason, 'max_positions');
    assert.equal(row.truncated, true);
    assert.equal(row.ids.length, 16 - [12, 3][i]!);
  }
  console.log(`gpt2 n_positions 16: ${rows.map((x) => `${x.ids.length} tokens, ${x.finish_reason}`).join('; ')}`);
  assert.ok(rows.some((x) => x.finish_reason === 'max_positions'));
});

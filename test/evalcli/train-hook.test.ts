// training.eval_generate_steps through `medlora train`: generation F1 on a validation sample is logged to metrics.jsonl
// every N updates and charted in report.html; the last record equals an independent evaluation of the saved adapter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setNumThreads } from '../../src/tensor/index.js';
import type { MedRecord } from '../../src/data/schema.js';
import { loadModel } from '../../src/model/load.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { loadAdapter } from '../../src/adapt/peft-io.js';
import { evaluateModel } from '../../src/eval/run-eval.js';
import { runCli } from '../eval/capture.js';
import { taskRecords, tinyFixture, writeRecords } from './tiny.js';

setNumThreads(1);

function config(name: string, validation: string | null, extra: Record<string, unknown> = {}): string {
  const fx = tinyFixture();
  const train = writeRecords('train-hook.jsonl', [
    ...taskRecords().chemicals,
    ...taskRecords()['drug-ae'],
  ] as MedRecord[]);
  const f = join(fx.root, `${name}.json`);
  writeFileSync(
    f,
    JSON.stringify({
      model: fx.model,
      output_dir: join(fx.root, name),
      data: { train, validation },
      lora: { r: 4, lora_alpha: 8 },
      training: {
        max_steps: 4,
        learning_rate: 0.05,
        per_device_train_batch_size: 2,
        per_device_eval_batch_size: 2,
        logging_steps: 1,
        save_steps: null,
        eval_generate_steps: 2,
        eval_generate_samples: 3,
        eval_generate_max_new_tokens: 40,
        ...extra,
      },
    }),
  );
  return f;
}

test('eval_generate_steps: gen_f1 logged every N updates, charted, and equal to evaluating the saved adapter', async () => {
  const fx = tinyFixture();
  const val = [...taskRecords().chemicals, ...taskRecords()['drug-ae']] as MedRecord[];
  const valFile = writeRecords('val-hook.jsonl', val);
  const cfg = config('run-hook', valFile);
  const r = await runCli(['train', '--config', cfg, '--quiet']);
  assert.equal(r.code, 0, r.err);
  const runDir = join(fx.root, 'run-hook');
  const recs = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
  const gens = recs.filter((x) => 'gen_f1' in x);
  assert.deepEqual(
    gens.map((g) => g.step),
    [2, 4],
  );
  for (const g of gens) {
    assert.equal(g.gen_samples, 3);
    assert.equal(g.gen_parse_rate, 1);
    assert.ok(g.gen_f1! >= 0 && g.gen_f1! <= 1);
    // one task in the sample: no per-task keys
    assert.ok(!Object.keys(g).some((k) => k.startsWith('gen_f1/')));
  }
  // the sample is the first 3 validation records: 3 chemicals records (one task); re-evaluate the final adapter
  const model = loadModel(fx.model);
  try {
    loadAdapter(model, join(runDir, 'adapter'));
    const tok = loadTokenizer(fx.model);
    const run = evaluateModel(model, tok, val.slice(0, 3), { maxNewTokens: 40, batchSize: 2, loss: false });
    assert.equal(gens[1]!.gen_f1, run.score.metrics.micro.f1);
  } finally {
    model.dispose();
  }
  const html = readFileSync(join(runDir, 'report.html'), 'utf8');
  assert.match(html, /Generation F1 \(validation sample of 3\)/);
});

test('eval_generate_steps errors: no validation file, tokenized validation rows', async () => {
  const fx = tinyFixture();
  const noVal = await runCli(['train', '--config', config('run-noval', null), '--quiet']);
  assert.notEqual(noVal.code, 0);
  assert.match(noVal.err, /training\.eval_generate_steps needs data\.validation/);
  const rows = join(fx.root, 'rows.jsonl');
  writeFileSync(rows, `${JSON.stringify({ input_ids: [1, 5, 6, 2], labels: [-100, 5, 6, 2] })}\n`);
  const tokVal = await runCli(['train', '--config', config('run-tokval', rows), '--quiet']);
  assert.notEqual(tokVal.code, 0);
  assert.match(tokVal.err, /eval_generate_steps needs data\.validation as canonical records/);
});

// `medlora eval` over 2 ranks (Gloo on 127.0.0.1): each rank generates its share of the records (whole generation
// batches), rank 0 gathers them in order and writes the same predictions and scores as a 1-process run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setNumThreads } from '../../src/tensor/index.js';
import { distAvailable } from '../../src/tensor/dist.js';
import type { MedRecord } from '../../src/data/schema.js';
import { packageRoot } from '../../src/util/paths.js';
import { taskRecords, tinyFixture, tunedEvalArgs, tunedExtractArgs, writeRecords } from '../evalcli/tiny.js';

setNumThreads(1);
const BIN = join(packageRoot(), 'bin', 'medlora.js');

test(
  'medlora eval with 2 ranks writes the scores and predictions of a 1-process eval',
  { skip: distAvailable().gloo ? false : 'the addon was built without c10d' },
  () => {
    const fx = tinyFixture();
    const base = taskRecords().chemicals as MedRecord[];
    // 7 records in batches of 2: rank 0 gets batches 0-1 (4 records), rank 1 batches 2-3 (3 records)
    const recs = Array.from({ length: 7 }, (_, i) => ({ ...base[i % 3]!, id: `r${i}` }));
    const data = writeRecords('dist-chem.jsonl', recs);
    const run = (out: string, extra: string[]): void => {
      const r = spawnSync(
        process.execPath,
        [BIN, ...tunedEvalArgs(fx, data, out), '--max-new-tokens', '24', '--batch-size', '2', '--quiet', ...extra],
        { encoding: 'utf8', env: { ...process.env, MEDLORA_NUM_THREADS: '1' } },
      );
      assert.equal(r.status, 0, r.stderr);
    };
    const one = join(fx.root, 'dist-eval-1'),
      two = join(fx.root, 'dist-eval-2');
    run(one, []);
    run(two, ['--nproc-per-node', '2', '--dist-timeout', '60']);
    assert.equal(
      readFileSync(join(two, 'predictions.jsonl'), 'utf8'),
      readFileSync(join(one, 'predictions.jsonl'), 'utf8'),
    );
    type Scores = Record<string, unknown> & { test_loss: number; perplexity: number; timing: unknown };
    const a = JSON.parse(readFileSync(join(two, 'scores.json'), 'utf8')) as Scores;
    const b = JSON.parse(readFileSync(join(one, 'scores.json'), 'utf8')) as Scores;
    const d = Math.abs(a.test_loss - b.test_loss);
    console.log(
      `  ${a.records} records; |test_loss diff| 2 ranks vs 1: ${d.toExponential(2)}; generated tokens ${JSON.stringify((a.timing as { generated_tokens: number }).generated_tokens)}`,
    );
    // the loss is a sum of per-rank sums (one more rounding): 1e-12 relative; everything else but the timing is equal
    assert.ok(d <= 1e-12 * Math.abs(b.test_loss), `test_loss ${a.test_loss} vs ${b.test_loss}`);
    const strip = (s: Scores): Record<string, unknown> => ({
      ...s,
      test_loss: 0,
      perplexity: 0,
      timing: { generated_tokens: (s.timing as { generated_tokens: number }).generated_tokens },
    });
    assert.deepEqual(strip(a), strip(b));
  },
);

test(
  'medlora extract --input with 2 ranks writes the JSON lines of a 1-process run, in input order',
  { skip: distAvailable().gloo ? false : 'the addon was built without c10d' },
  () => {
    const fx = tinyFixture();
    const texts = [
      'Cisplatin and lithium caused renal damage.',
      'Aspirin reduced fever.',
      'Nothing here.',
      'Warfarin and aspirin.',
      'Lithium induced tremor.',
    ];
    const input = writeRecords(
      'dist-extract.jsonl',
      texts.map((t, i) => ({ id: `x${i}`, text: t }) as unknown as MedRecord),
    );
    const run = (out: string, extra: string[]): string => {
      const r = spawnSync(
        process.execPath,
        [
          BIN,
          ...tunedExtractArgs(fx, 'chemicals'),
          '--input',
          input,
          '--output',
          out,
          '--max-new-tokens',
          '24',
          '--batch-size',
          '2',
          '--quiet',
          ...extra,
        ],
        { encoding: 'utf8', env: { ...process.env, MEDLORA_NUM_THREADS: '1' } },
      );
      assert.equal(r.status, 0, r.stderr);
      return readFileSync(out, 'utf8');
    };
    const one = run(join(fx.root, 'x1.jsonl'), []);
    const two = run(join(fx.root, 'x2.jsonl'), ['--nproc-per-node', '2']);
    assert.deepEqual(
      two
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { id: string }).id),
      ['x0', 'x1', 'x2', 'x3', 'x4'],
    );
    assert.equal(two, one);
  },
);

// Training data: pre-tokenized row validation (errors name file:line and the field), format detection, length policy,
// and the batch source's seeded, position-restorable order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchSource, countTargets, loadExamples, padBatch } from '../../src/train/data.js';
import type { DataConfig } from '../../src/train/config.js';

const DATA: DataConfig = {
  train: 'x',
  validation: null,
  format: 'auto',
  max_length: null,
  prompt_style: 'alpaca',
  overflow: 'drop',
};
function file(lines: string[]): string {
  const f = join(mkdtempSync(join(tmpdir(), 'medlora-data-')), 'd.jsonl');
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}
const row = (ids: number[], labels: number[]): string => JSON.stringify({ input_ids: ids, labels });

test('pre-tokenized rows load; loss tokens are counted after the causal shift', async () => {
  const f = file([row([1, 2, 3], [-100, 2, 3]), row([4, 5], [4, 5])]);
  const { examples, report } = await loadExamples(f, { data: DATA, vocabSize: 10 });
  assert.equal(examples.length, 2);
  assert.equal(report.format, 'tokenized');
  // row 1: labels[1:] = [2, 3] -> 2; row 2: labels[1:] = [5] -> 1 (the first label is never a target)
  assert.equal(report.trainTokens, 3);
  assert.equal(countTargets(examples[1]!), 1);
});

test('bad rows are errors naming file:line and the field', async () => {
  const cases: Array<[string, RegExp]> = [
    [row([1, 2, 3], [1, 2]), /:2: "labels" has 2 entries but "input_ids" has 3/],
    [row([1, 99], [-100, 1]), /:2: input_ids\[1\] = 99 is not a token id in \[0, 10\)/],
    [row([1, 2], [-100, -5]), /:2: labels\[1\] = -5 is neither -100 nor a token id/],
    ['{"input_ids": [1, 2]}', /:2: "labels" must be a list/],
    ['not json', /:2: invalid JSON/],
  ];
  for (const [bad, re] of cases) {
    const f = file([row([1, 2], [1, 2]), bad]);
    await assert.rejects(
      loadExamples(f, { data: DATA, vocabSize: 10 }),
      (e: Error) => e.message.startsWith(f) && re.test(e.message),
    );
  }
  await assert.rejects(loadExamples(file(['{"text": "hi"}']), { data: DATA }), /:1: cannot tell the data format/);
  await assert.rejects(
    loadExamples(file([JSON.stringify({ id: 'a', task: 'ner-chemicals', input: 'x', gold: [] })]), { data: DATA }),
    /records need a tokenizer/,
  );
});

test('max_length: over-long rows are dropped and counted, or an error with overflow: error', async () => {
  const f = file([row([1, 2, 3, 4], [1, 2, 3, 4]), row([1, 2], [1, 2])]);
  const { examples, report } = await loadExamples(f, { data: { ...DATA, max_length: 3 } });
  assert.equal(examples.length, 1);
  assert.equal(report.dropped, 1);
  await assert.rejects(
    loadExamples(f, { data: { ...DATA, max_length: 3, overflow: 'error' } }),
    /row 1 has 4 tokens > data.max_length 3/,
  );
  await assert.rejects(
    loadExamples(file([row([1, 2, 3], [1, 2, 3])]), { data: { ...DATA, max_length: 2 } }),
    /no usable examples/,
  );
});

test('padding: right side, pad id, -100 labels, 0 mask', () => {
  const b = padBatch(
    [
      { input_ids: [1, 2, 3], labels: [-100, 2, 3] },
      { input_ids: [4], labels: [4] },
    ],
    9,
  );
  assert.deepEqual(b.input_ids, [
    [1, 2, 3],
    [4, 9, 9],
  ]);
  assert.deepEqual(b.labels, [
    [-100, 2, 3],
    [4, -100, -100],
  ]);
  assert.deepEqual(b.attention_mask, [
    [1, 1, 1],
    [1, 0, 0],
  ]);
  assert.equal(b.padded, true);
  assert.equal(b.targets, 2);
  // row 0: positions 0 and 1 predict 2 and 3; row 1 predicts nothing (its only label is at position 0)
  assert.deepEqual(b.scored, { positions: [0, 1], targets: [2, 3] });
});

test('batch source: seeded per-epoch order, a permutation each epoch, restorable from its position', () => {
  const ex = Array.from({ length: 7 }, (_, i) => ({ input_ids: [i, i], labels: [i, i] }));
  const a = new BatchSource(ex, 2, true, 3, 0);
  assert.equal(a.batchesPerEpoch, 4);
  const seen: number[] = [];
  for (let i = 0; i < 4; i++) seen.push(...a.next().input_ids.map((r) => r[0]!));
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4, 5, 6]);
  assert.notDeepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
  const e1 = [a.next(), a.next()].map((b) => b.input_ids);
  assert.notDeepEqual(a.orderOf(0), a.orderOf(1));
  const c = new BatchSource(ex, 2, true, 3, 0);
  c.pos = { epoch: 1, index: 0 };
  assert.deepEqual(
    [c.next(), c.next()].map((b) => b.input_ids),
    e1,
  );
  const d = new BatchSource(ex, 2, false, 3, 0);
  assert.deepEqual(d.next().input_ids, [
    [0, 0],
    [1, 1],
  ]);
});

// The pooled-set metric (medlora score --metric pooled-set) against hand-computed counts. Definition: the
// adverse-event recipe's scripts/evaluate.py (architkaila/Fine-Tuning-LLMs-for-Medical-Entity-Extraction @ d60fda1):
// per record, parse_entities() puts drug_name and every adverse event into ONE Python set (so a drug name that is
// also an event is one element), then TP += |gt & pred|, FP += |pred - gt|, FN += |gt - pred|; P = TP/(TP+FP),
// R = TP/(TP+FN). The recipe's published table needs its withheld test predictions (../shared/corpora README:
// "published prediction files" are withheld), so the check is on a small hand-written gold / prediction pair.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MATCH } from '../../src/eval/match.js';
import { scoreFiles } from '../../src/eval/score.js';
import { runCli } from './capture.js';

const gold = [
  // r1: the drug name also appears as an event: the set is {Abilify, nausea} (2 elements, not 3)
  { id: 'r1', task: 'ade-email', input: 'x', gold: { drug_name: 'Abilify', adverse_events: ['nausea', 'Abilify'] } },
  {
    id: 'r2',
    task: 'ade-email',
    input: 'y',
    gold: { drug_name: 'Lipitor', adverse_events: ['muscle pain', 'headache'] },
  },
  { id: 'r3', task: 'ade-email', input: 'z', gold: { drug_name: 'Zoloft', adverse_events: ['insomnia'] } },
];
const preds = [
  // r1: {Abilify, nausea, vomiting}: TP 2 (Abilify, nausea), FP 1 (vomiting), FN 0
  { id: 'r1', pred: { drug_name: 'Abilify', adverse_events: ['nausea', 'vomiting', 'nausea'] } },
  // r2: the event "Lipitor" is a pooled hit for the gold drug name even though typed scoring calls it a wrong event;
  //     {Lipitor, headache, rash}: TP 2 (Lipitor, headache), FP 1 (rash), FN 1 (muscle pain)
  { id: 'r2', pred: { drug_name: '', adverse_events: ['Lipitor', 'headache', 'rash'] } },
  // r3: {Sertraline, insomnia}: TP 1, FP 1, FN 1 (Zoloft)
  { id: 'r3', pred: { drug_name: 'Sertraline', adverse_events: ['insomnia'] } },
];
// hand sums: TP 2+2+1 = 5, FP 1+1+1 = 3, FN 0+1+1 = 2 -> P = 5/8 = 0.625, R = 5/7 = 0.714285..., F1 = 10/15
const HAND = { tp: 5, fp: 3, fn: 2 };

function files(): { g: string; p: string } {
  const d = mkdtempSync(join(tmpdir(), 'medlora-pooled-'));
  const g = join(d, 'gold.jsonl'),
    p = join(d, 'pred.jsonl');
  writeFileSync(g, gold.map((r) => `${JSON.stringify(r)}\n`).join(''));
  writeFileSync(p, preds.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return { g, p };
}

test('pooled-set: TP/FP/FN per record summed, equal to the hand-computed counts; typed scoring differs', () => {
  const { g, p } = files();
  const r = scoreFiles('ade-email', g, p, { ...DEFAULT_MATCH, metric: 'pooled-set' });
  const m = r.metrics.micro;
  console.log(`pooled-set: TP ${m.tp} FP ${m.fp} FN ${m.fn} P ${m.precision} R ${m.recall}`);
  assert.deepEqual({ tp: m.tp, fp: m.fp, fn: m.fn }, HAND);
  assert.equal(m.precision, 5 / 8);
  assert.equal(m.recall, 5 / 7);
  assert.deepEqual(
    r.records.map((x) => [x.tp.length, x.fp.length, x.fn.length]),
    [
      [2, 1, 0],
      [2, 1, 1],
      [1, 1, 1],
    ],
  );
  assert.deepEqual(
    r.metrics.perType.map((t) => t.type),
    ['entity'],
  );
  // the checker can fail: the typed metric on the same files gives other counts (r1's duplicate event and the gold
  // event "Abilify" are multiset items; r2's "Lipitor" event is not the drug name)
  const t = scoreFiles('ade-email', g, p, DEFAULT_MATCH).metrics.micro;
  assert.notDeepEqual({ tp: t.tp, fp: t.fp, fn: t.fn }, HAND);
});

test('medlora score --metric pooled-set prints the pooled counts; an unknown metric is one clear error', async () => {
  const { g, p } = files();
  const r = await runCli([
    'score',
    '--task',
    'ade-email',
    '--gold',
    g,
    '--pred',
    p,
    '--metric',
    'pooled-set',
    '--json',
  ]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as {
    metrics: { micro: { tp: number; fp: number; fn: number } };
    options: { metric: string };
  };
  assert.deepEqual({ tp: j.metrics.micro.tp, fp: j.metrics.micro.fp, fn: j.metrics.micro.fn }, HAND);
  assert.equal(j.options.metric, 'pooled-set');
  const bad = await runCli(['score', '--task', 'ade-email', '--gold', g, '--pred', p, '--metric', 'pooled']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /^medlora score: error: --metric must be one of typed, pooled-set, got "pooled"$/);
});

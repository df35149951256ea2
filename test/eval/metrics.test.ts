// Metric and matching tests on hand-computed cases: duplicates, empty sides, symmetric pairs, micro vs macro,
// normalisation and filters. Every expected number is worked out in the comments next to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose } from '../../src/util/close.js';
import { aggregate, prf } from '../../src/eval/metrics.js';
import { DEFAULT_MATCH, type MatchOptions, matchItems, toItems } from '../../src/eval/match.js';
import { DEFAULT_STOP_LIST, RELAXED_NORMALIZE, normalizeText } from '../../src/infer/normalize.js';
type StructuredTask = Exclude<keyof GoldByTask, 'qa'>;
import type { GoldByTask } from '../../src/data/schema.js';

function score<T extends StructuredTask>(
  task: T,
  gold: GoldByTask[T],
  pred: GoldByTask[T],
  o: MatchOptions = DEFAULT_MATCH,
  src = '',
) {
  return matchItems(toItems(task, gold, o, src, false).items, toItems(task, pred, o, src, true).items);
}
const relaxed: MatchOptions = { ...DEFAULT_MATCH, mode: 'relaxed' };

test('prf: plain case and the 0/0 conventions', () => {
  // tp 3, fp 1, fn 2: P = 3/4, R = 3/5, F1 = 2*3/(6+1+2) = 6/9
  const r = prf({ tp: 3, fp: 1, fn: 2 });
  assertClose([r.precision, r.recall, r.f1], [0.75, 0.6, 6 / 9], { atol: 1e-12, label: 'P/R/F1' });
  assert.deepEqual(prf({ tp: 0, fp: 0, fn: 0 }), { precision: 1, recall: 1, f1: 1 }); // empty gold & empty pred = perfect
  assert.deepEqual(prf({ tp: 0, fp: 0, fn: 4 }), { precision: 0, recall: 0, f1: 0 }); // predicted nothing
  assert.deepEqual(prf({ tp: 0, fp: 2, fn: 0 }), { precision: 0, recall: 0, f1: 0 }); // predicted against empty gold
});

test('duplicates: multiset semantics', () => {
  // gold {a, a, b}; pred {a, a, a, c}: TP = min(2,3) = 2, FP = 1 extra a + c = 2, FN = b = 1
  const m = score('chemicals', ['a', 'a', 'b'], ['a', 'a', 'a', 'c']);
  assert.deepEqual([m.tp.length, m.fp.length, m.fn.length], [2, 2, 1]);
  assert.deepEqual(m.fp.map((i) => i.text).sort(), ['a', 'c']);
  assert.deepEqual(
    m.fn.map((i) => i.text),
    ['b'],
  );
});

test('empty sides per record and in aggregate', () => {
  const emptyBoth = score('diseases', [], []);
  const emptyPred = score('diseases', ['x', 'y'], []);
  const emptyGold = score('diseases', [], ['z']);
  const agg = aggregate([emptyBoth, emptyPred, emptyGold]);
  // pooled: tp 0, fp 1, fn 2 -> P = R = F1 = 0
  assert.deepEqual([agg.micro.tp, agg.micro.fp, agg.micro.fn], [0, 1, 2]);
  assert.equal(agg.micro.f1, 0);
  // per-record F1: 1 (both empty), 0, 0 -> mean 1/3; exact match: only the first record
  assertClose([agg.perRecord.f1], [1 / 3], { atol: 1e-12, label: 'per-record F1' });
  assert.deepEqual(agg.exact, { records: 3, correct: 1, rate: 1 / 3 });
  // every record empty on both sides: perfect everywhere
  const allEmpty = aggregate([emptyBoth, emptyBoth]);
  assert.deepEqual([allEmpty.micro.f1, allEmpty.macro.f1, allEmpty.perRecord.f1, allEmpty.exact.rate], [1, 1, 1, 1]);
});

test('symmetric pairs: DDI 2013 types unordered by default, DrugBank text relations ordered', () => {
  const gold = [
    { head: 'A', relation: 'effect', tail: 'B' },
    { head: 'C', relation: 'increases the effect of', tail: 'D' },
  ];
  const pred = [
    { head: 'B', relation: 'effect', tail: 'A' },
    { head: 'D', relation: 'increases the effect of', tail: 'C' },
  ];
  const d = score('ddi-triplets', gold, pred);
  // effect is symmetric: (B, A) matches (A, B); the DrugBank relation is directional: (D, C) != (C, D)
  assert.deepEqual([d.tp.length, d.fp.length, d.fn.length], [1, 1, 1]);
  const all = score('ddi-triplets', gold, pred, { ...DEFAULT_MATCH, symmetric: 'all' });
  assert.deepEqual([all.tp.length, all.fp.length, all.fn.length], [2, 0, 0]);
  const none = score('ddi-triplets', gold, pred, { ...DEFAULT_MATCH, symmetric: 'none' });
  assert.deepEqual([none.tp.length, none.fp.length, none.fn.length], [0, 2, 2]);
  // pair tasks are directional unless everything is symmetric
  assert.equal(score('drug-ae', [{ head: 'x', tail: 'y' }], [{ head: 'y', tail: 'x' }]).tp.length, 0);
  assert.equal(
    score('drug-ae', [{ head: 'x', tail: 'y' }], [{ head: 'y', tail: 'x' }], { ...DEFAULT_MATCH, symmetric: 'all' }).tp
      .length,
    1,
  );
  // a relation must match too: same pair, other type = FP + FN
  const wrongType = score(
    'ddi-triplets',
    [{ head: 'A', relation: 'effect', tail: 'B' }],
    [{ head: 'A', relation: 'int', tail: 'B' }],
  );
  assert.deepEqual([wrongType.tp.length, wrongType.fp.length, wrongType.fn.length], [0, 1, 1]);
});

test('micro vs macro over relation types', () => {
  // record 1: gold 4 x mechanism, pred finds all 4 + nothing else        -> mechanism tp 4
  // record 2: gold 1 x advise, pred says int instead                      -> advise fn 1, int fp 1
  const t = (h: string, r: string, x: string) => ({ head: h, relation: r, tail: x });
  const r1 = score(
    'ddi-triplets',
    [t('a', 'mechanism', 'b'), t('c', 'mechanism', 'd'), t('e', 'mechanism', 'f'), t('g', 'mechanism', 'h')],
    [t('a', 'mechanism', 'b'), t('c', 'mechanism', 'd'), t('e', 'mechanism', 'f'), t('g', 'mechanism', 'h')],
  );
  const r2 = score('ddi-triplets', [t('p', 'advise', 'q')], [t('p', 'int', 'q')]);
  const agg = aggregate([r1, r2]);
  assert.deepEqual(
    agg.perType.map((x) => [x.type, x.tp, x.fp, x.fn]),
    [
      ['advise', 0, 0, 1],
      ['int', 0, 1, 0],
      ['mechanism', 4, 0, 0],
    ],
  );
  // micro: tp 4, fp 1, fn 1 -> P = 4/5, R = 4/5, F1 = 8/10
  assertClose([agg.micro.precision, agg.micro.recall, agg.micro.f1], [0.8, 0.8, 0.8], { atol: 1e-12, label: 'micro' });
  // macro: per-type F1 advise 0, int 0, mechanism 1 -> 1/3; P: advise 0 (no preds, gold exists), int 0, mech 1 -> 1/3
  assertClose([agg.macro.precision, agg.macro.recall, agg.macro.f1], [1 / 3, 1 / 3, 1 / 3], {
    atol: 1e-12,
    label: 'macro',
  });
  // per-record: r1 F1 1, r2 F1 0 -> 0.5
  assertClose([agg.perRecord.f1], [0.5], { atol: 1e-12, label: 'per-record' });
});

test('strict vs relaxed: case, whitespace, Unicode dashes (hyphens kept), trailing punctuation', () => {
  assert.equal(normalizeText('  Beta\u2013Blocker  agents. ', RELAXED_NORMALIZE), 'beta-blocker agents');
  assert.equal(normalizeText('L-dopa', RELAXED_NORMALIZE), 'l-dopa'); // the hyphen stays: "l dopa" would be different
  const gold = ['Beta-blocker', 'ACE inhibitor', 'L-dopa'];
  const pred = ['beta\u2010blocker', 'ACE  inhibitor.', 'L dopa'];
  const s = score('chemicals', gold, pred);
  assert.equal(s.tp.length, 0);
  const r = score('chemicals', gold, pred, relaxed);
  // relaxed matches the first two; "L dopa" != "l-dopa" because hyphens are kept
  assert.deepEqual(
    r.tp.map((i) => i.text),
    ['beta\u2010blocker', 'ACE  inhibitor.'],
  );
  assert.deepEqual(
    r.fn.map((i) => i.text),
    ['L-dopa'],
  );
  // switching lowercase off under relaxed keeps case distinct
  const noCase = score('chemicals', ['Aspirin'], ['aspirin'], {
    ...relaxed,
    normalize: { ...RELAXED_NORMALIZE, lowercase: false },
  });
  assert.equal(noCase.tp.length, 0);
});

test('filters act on predictions only: grounding, stop-list, min length', () => {
  const src = 'Patients given Haloperidol developed tardive dyskinesia.';
  const o: MatchOptions = { ...relaxed, filters: { grounding: true, stopList: [...DEFAULT_STOP_LIST], minLength: 3 } };
  const pred = toItems('diseases', ['tardive dyskinesia', 'parkinsonism', 'Disease', 'td'], o, src, true);
  assert.deepEqual(
    pred.items.map((i) => i.key),
    ['tardive dyskinesia'],
  );
  assert.deepEqual(
    pred.filtered.map((f) => f.reason),
    ['"parkinsonism": not in source text', '"Disease": stop-list', '"td": shorter than 3'],
  );
  // gold is never filtered
  assert.equal(toItems('diseases', ['parkinsonism', 'td'], o, src, false).items.length, 2);
  // a pair is dropped when either side is ungrounded
  const pairs = toItems(
    'influences',
    [
      { head: 'haloperidol', tail: 'tardive dyskinesia' },
      { head: 'haloperidol', tail: 'fever' },
    ],
    o,
    src,
    true,
  );
  assert.equal(pairs.items.length, 1);
});

test('ade-email: drug_name and adverse events as types; an empty drug name is no item', () => {
  const g = { drug_name: 'Abilify', adverse_events: ['nausea', 'vomiting'] };
  const m = score('ade-email', g, { drug_name: 'abilify', adverse_events: ['Nausea', 'headache'] }, relaxed);
  // drug tp 1; events: nausea tp, headache fp, vomiting fn
  const agg = aggregate([m]);
  assert.deepEqual(
    agg.perType.map((x) => [x.type, x.tp, x.fp, x.fn]),
    [
      ['adverse_event', 1, 1, 1],
      ['drug_name', 1, 0, 0],
    ],
  );
  const empty = score('ade-email', g, { drug_name: '', adverse_events: [] });
  assert.deepEqual([empty.tp.length, empty.fp.length, empty.fn.length], [0, 0, 3]);
});

// Unit tests of the demo's steps: the split keeps drug pairs on one side, a fresh model saves and loads back
// bit-exactly with HF's init statistics, the constraint hook accepts every gold answer, and bad options are clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assignPairGroups, buildDemoData, pairKey } from '../../src/demo/data.js';
import { buildDemoTokenizer } from '../../src/demo/tokenizer.js';
import { demoModelConfig, demoSettings } from '../../src/demo/settings.js';
import { prepareOutDir } from '../../src/demo/run.js';
import { descriptionFirstRow, tableRow } from '../../src/demo/base.js';
import { scoreRows } from '../../src/demo/report.js';
import { sameTriplets } from '../../src/demo/extract.js';
import { encodeForEval } from '../../src/infer/generate-answers.js';
import { scoreRecords, type PredLine } from '../../src/eval/score.js';
import { DEFAULT_MATCH } from '../../src/eval/match.js';
import { taskConstraint } from '../../src/generate/constraints/index.js';
import { TASKS } from '../../src/data/tasks.js';
import { initModel, saveModel } from '../../src/model/init.js';
import { loadModel } from '../../src/model/load.js';
import { renderTarget } from '../../src/data/tasks.js';
import type { MedRecord } from '../../src/data/schema.js';
import { assertClose } from '../../src/util/close.js';
import { MedloraError } from '../../src/util/errors.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'medlora-demo-steps-'));

test('demo data: records linked by a shared drug pair share a group; no drug pair is in two splits', async () => {
  const recs: MedRecord<'ddi-triplets'>[] = [
    { id: 'a', task: 'ddi-triplets', input: 'x', gold: [{ head: 'warfarin', relation: 'r', tail: 'aspirin' }] },
    {
      id: 'b',
      task: 'ddi-triplets',
      input: 'y',
      gold: [
        { head: 'aspirin', relation: 's', tail: 'warfarin' },
        { head: 'digoxin', relation: 'r', tail: 'lithium' },
      ],
    },
    { id: 'c', task: 'ddi-triplets', input: 'z', gold: [{ head: 'lithium', relation: 'r', tail: 'digoxin' }] },
    { id: 'd', task: 'ddi-triplets', input: 'w', gold: [{ head: 'heparin', relation: 'r', tail: 'digoxin' }] },
  ];
  assignPairGroups(recs);
  const g = recs.map((r) => r.meta!.pair_group);
  // a~b through warfarin|aspirin, b~c through digoxin|lithium; d shares a drug but no pair
  assert.equal(g[0], g[1]);
  assert.equal(g[1], g[2]);
  assert.notEqual(g[3], g[0]);

  const d = await buildDemoData(join(tmp(), 'data'), { count: 400, seed: 3 });
  assert.equal(d.train.length + d.validation.length + d.test.length, 400);
  const pairsOf = (rs: MedRecord[]): Set<string> =>
    new Set(rs.flatMap((r) => (r as MedRecord<'ddi-triplets'>).gold.map(pairKey)));
  const train = pairsOf(d.train);
  for (const p of pairsOf(d.test)) assert.ok(!train.has(p), `test pair ${p} also in train`);
  for (const p of pairsOf(d.validation)) assert.ok(!train.has(p), `validation pair ${p} also in train`);
  assert.ok(d.test.length >= 30 && d.test.length <= 50, `test size ${d.test.length} ~ 10%`);
});

test('initModel: HF init statistics; saveModel + loadModel round-trips every weight exactly', async () => {
  const dir = tmp();
  const s = demoSettings({ steps: 1 });
  s.model = { hidden: 32, layers: 2, heads: 4, intermediate: 64, maxPositions: 64 };
  const raw = demoModelConfig(s, { vocabSize: 300, bosId: 0, eosId: 1, padId: 2 });
  const m = initModel(raw, { seed: 5 });
  const params = new Map(m.namedParameters());
  const emb = params.get('model.embed_tokens.weight')!.toFloat32Array();
  assert.equal(emb.length, 300 * 32);
  const mean = emb.reduce((a, b) => a + b, 0) / emb.length;
  const std = Math.sqrt(emb.reduce((a, b) => a + (b - mean) ** 2, 0) / emb.length);
  // 9600 draws of N(0, 0.02): the sample std is within a few percent of 0.02
  assert.ok(Math.abs(std - 0.02) < 0.002, `embedding std ${std}`);
  assert.ok(Math.abs(mean) < 0.002, `embedding mean ${mean}`);
  assert.deepEqual([...params.get('model.norm.weight')!.toFloat32Array()], new Array(32).fill(1));
  saveModel(m, raw, dir);
  const back = loadModel(dir);
  const b = new Map(back.namedParameters());
  assert.deepEqual([...b.keys()].sort(), [...params.keys()].sort());
  for (const [k, t] of params) assertClose(b.get(k)!.toFloat32Array(), t.toFloat32Array(), { atol: 0, label: k });
  assert.equal(back.config.model_type, 'llama');
  m.dispose();
  back.dispose();
});

test('demo tokenizer + library constraint: every gold answer is allowed token by token, EOS only after a complete triplet; prompts are short', async () => {
  const dir = tmp();
  const d = await buildDemoData(join(dir, 'data'), { count: 120, seed: 4 });
  const tok = buildDemoTokenizer(join(dir, 'tok'), d.train, { vocabSize: 400 });
  const c = taskConstraint('ddi-triplets', tok);
  const budget = demoSettings().generation.maxNewTokens;
  for (const r of [...d.test, ...d.validation].slice(0, 15)) {
    const ids = tok.encode(renderTarget(r), { addSpecialTokens: false });
    let state = c.initial();
    for (let i = 0; i < ids.length; i++) {
      const m = c.mask(state, budget - i);
      assert.equal(
        m.allowed[ids[i]!],
        1,
        `${r.id}: token ${i} (${JSON.stringify(tok.decode([ids[i]!]))}) of ${JSON.stringify(renderTarget(r))} blocked`,
      );
      // EOS exactly where the text so far is a complete answer: after a closing ">" of a triplet
      const soFar = tok.decode(ids.slice(0, i));
      assert.equal(
        m.eos,
        soFar.endsWith('>'),
        `${r.id}: EOS ${m.eos ? 'allowed' : 'blocked'} after ${JSON.stringify(soFar)}`,
      );
      state = c.advance(state, ids[i]!);
      assert.ok(state >= 0, `${r.id}: token ${i} rejected by advance`);
    }
    assert.equal(c.mask(state, budget - ids.length).eos, true, `${r.id}: EOS not allowed after the full answer`);
  }
  // the prompt as evaluation / extraction build it: BOS, the chat markers, the task's own instruction, the sentence
  const e = encodeForEval(d.test[0]!, tok, { promptStyle: 'chat' });
  const p = e.input_ids.slice(0, e.promptLength);
  assert.equal(p[0], tok.bosId);
  const text = tok.decode(p, { skipSpecialTokens: false });
  assert.ok(text.includes(TASKS['ddi-triplets'].instruction), text);
  assert.match(text, /<\|assistant\|>\n$/);
  // the BPE saw the instruction once per training record, so it costs far fewer tokens than its 150-odd bytes
  const instr = tok.encode(TASKS['ddi-triplets'].instruction, { addSpecialTokens: false }).length;
  assert.ok(instr <= 40, `instruction takes ${instr} tokens`);
});

test('scores: hand-counted P/R/F1 of two records, as the demo table shows them', () => {
  const recs: MedRecord[] = [
    { id: '1', task: 'ddi-triplets', input: 'A may increase B.', gold: [{ head: 'a', relation: 'r', tail: 'b' }] },
    {
      id: '2',
      task: 'ddi-triplets',
      input: 'C ... D.',
      gold: [
        { head: 'c', relation: 'r', tail: 'd' },
        { head: 'd', relation: 's', tail: 'c' },
      ],
    },
  ];
  // record 1: exact (TP 1); record 2: one right, one wrong relation (TP 1, FP 1, FN 1) -> P 2/3, R 2/3
  const preds = new Map<string, { value: PredLine; where: string }>([
    ['1', { value: { id: '1', output: '<a, r, b>' }, where: 'p1' }],
    ['2', { value: { id: '2', output: '<c, r, d>\n<d, x, c>' }, where: 'p2' }],
  ]);
  const res = { ...scoreRecords('ddi-triplets', recs, preds, DEFAULT_MATCH), gold: undefined, pred: undefined };
  assertClose([res.metrics.micro.precision, res.metrics.micro.recall, res.metrics.micro.f1], [2 / 3, 2 / 3, 2 / 3], {
    atol: 1e-12,
    label: 'P/R/F1',
  });
  const { rows } = scoreRows([{ name: 'm', result: res, loss: 0.25 }]);
  assert.deepEqual(
    rows.find((r) => r[0] === 'exact-match records'),
    ['exact-match records', '1/2'],
  );
  assert.deepEqual(
    rows.find((r) => r[0] === 'F1 (micro)'),
    ['F1 (micro)', '0.667'],
  );
  assert.deepEqual(
    rows.find((r) => r[0] === 'test loss (gold answers)'),
    ['test loss (gold answers)', '0.250'],
  );
  // the example check: same set, order free; a missing or extra triplet is wrong
  const t = (h: string, r: string, tl: string) => ({ head: h, relation: r, tail: tl });
  assert.equal(sameTriplets([t('d', 's', 'c'), t('c', 'r', 'd')], [t('c', 'r', 'd'), t('d', 's', 'c')]), true);
  assert.equal(sameTriplets([t('c', 'r', 'd')], [t('c', 'r', 'd'), t('d', 's', 'c')]), false);
  assert.equal(sameTriplets([t('c', 'r', 'd'), t('c', 'r', 'd')], [t('c', 'r', 'd'), t('d', 's', 'c')]), false);
});

test('bad options and a foreign --out folder are clear errors', () => {
  assert.throws(
    () => demoSettings({ steps: 0 }),
    (e: unknown) =>
      e instanceof MedloraError && e.field === 'steps' && /^steps must be a whole number >= 1, got 0/.test(e.message),
  );
  assert.throws(() => demoSettings({ records: 5 }), /^MedloraError: records must be a whole number >= 20/);
  const d = tmp();
  mkdirSync(join(d, 'mine'));
  writeFileSync(join(d, 'mine', 'notes.txt'), 'keep me');
  assert.throws(() => prepareOutDir(join(d, 'mine')), /is not empty and holds no earlier demo run/);
  // an earlier demo run is replaced
  writeFileSync(join(d, 'mine', 'demo.json'), '{}');
  prepareOutDir(join(d, 'mine'));
});

test('base LM text: a record becomes a DrugBank table row (drug names, then the sentence)', () => {
  const r: MedRecord = {
    id: '1',
    task: 'ddi-triplets',
    input: 'Warfarin may increase the anticoagulant activities of aspirin.',
    gold: [{ head: 'warfarin', relation: 'may increase the anticoagulant activities of', tail: 'aspirin' }],
  };
  assert.equal(tableRow(r), 'warfarin,aspirin,Warfarin may increase the anticoagulant activities of aspirin.');
  assert.equal(
    descriptionFirstRow(r),
    'Warfarin may increase the anticoagulant activities of aspirin.,warfarin,aspirin',
  );
});

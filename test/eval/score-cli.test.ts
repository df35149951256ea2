// `medlora score` end to end on the adverse-event emails' training file: against itself (all 1.0) and against a
// deliberately perturbed copy whose P/R/F1 are worked out by hand below; plus the error paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared } from '../../src/util/paths.js';
import { assertClose } from '../../src/util/close.js';
import { ADE_TRAIN, adeEmailRecords } from './ade-email-fixture.js';
import { runCli } from './capture.js';

const skip = !hasShared() || !existsSync(ADE_TRAIN) ? 'needs ../shared/corpora/ade-email-entity-extraction' : false;

interface JsonReport {
  metrics: {
    perType: Array<{ type: string; tp: number; fp: number; fn: number; precision: number; recall: number; f1: number }>;
    micro: { tp: number; fp: number; fn: number; precision: number; recall: number; f1: number };
    macro: { f1: number };
    exact: { correct: number; records: number };
  };
  counts: { missingIds: string[]; extraIds: string[]; unparsedLines: number };
}

function jsonl(rows: unknown[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'medlora-score-'));
  const recs = adeEmailRecords();
  const gold = join(dir, 'gold.jsonl');
  writeFileSync(gold, jsonl(recs.map(({ raw: _raw, ...r }) => r)));
  return { dir, recs, gold };
}

test('score: ade-email train vs itself = 1.0', { skip }, async () => {
  const { dir, recs, gold } = setup();
  const pred = join(dir, 'pred.jsonl');
  // the raw target text, exactly as a perfect model would write it
  writeFileSync(pred, jsonl(recs.map((r) => ({ id: r.id, output: r.raw }))));
  const r = await runCli(['score', '--task', 'ade-email', '--gold', gold, '--pred', pred, '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as JsonReport;
  const nAe = recs.reduce((a, x) => a + x.gold.adverse_events.length, 0); // counted from the fixture: 1,397
  assert.equal(recs.length, 700);
  assert.deepEqual([j.metrics.micro.tp, j.metrics.micro.fp, j.metrics.micro.fn], [700 + nAe, 0, 0]);
  assert.deepEqual([j.metrics.micro.f1, j.metrics.macro.f1, j.metrics.exact.correct], [1, 1, 700]);
  // the text table prints too
  const t = await runCli(['score', '--task', 'ade-email', '--gold', gold, '--pred', pred]);
  assert.equal(t.code, 0);
  assert.match(t.out, /micro \(pooled counts\)\s+2097\s+0\s+0\s+1\.000\s+1\.000\s+1\.000/);
});

test('score: ade-email train vs a perturbed copy = hand-computed P/R/F1, strict and relaxed', { skip }, async () => {
  const { dir, recs, gold } = setup();
  const pred = join(dir, 'pred.jsonl');
  const lines: unknown[] = [];
  const ae = (i: number) => recs[i]!.gold.adverse_events;
  const up = ae(3)[0]!.toUpperCase();
  assert.notEqual(up, ae(3)[0]); // the case perturbation must change the string
  for (const [i, r] of recs.entries()) {
    const g = r.gold;
    const out = (o: object) => lines.push({ id: r.id, output: JSON.stringify(o) });
    if (i === 0)
      out({ ...g, adverse_events: ae(0).slice(0, -1) }); //           drop one event: AE FN +1
    else if (i === 1)
      out({ ...g, adverse_events: [...ae(1), 'spontaneous levitation'] }); // AE FP +1
    else if (i === 2)
      out({ ...g, drug_name: 'Placebex' }); //                    drug FP +1, FN +1
    else if (i === 3)
      out({ ...g, adverse_events: [up, ...ae(3).slice(1)] }); // strict: AE FP +1 FN +1; relaxed: ok
    else if (i === 4)
      continue; //                                                  missing: drug FN +1, AE FN +n4
    else if (i === 5)
      lines.push({ id: r.id, output: 'I cannot help with that.' }); // unparsed: drug FN +1, AE FN +n5
    else if (i === 6)
      lines.push({ id: r.id, pred: g }); //                        structured form, all right
    else if (i === 7)
      out({ ...g, adverse_events: [...ae(7), ae(7)[0]] }); //     duplicate: AE FP +1
    else lines.push({ id: r.id, output: r.raw });
  }
  lines.push({ id: 'not-in-gold', output: '{"drug_name": "X", "adverse_events": []}' });
  writeFileSync(pred, jsonl(lines));

  const G_DRUG = 700;
  const G_AE = recs.reduce((a, x) => a + x.gold.adverse_events.length, 0);
  const n4 = ae(4).length,
    n5 = ae(5).length;
  // independent check of the fixture count: SOURCE.md lists 1,512 AE strings in all and 115 in the test split
  assert.equal(G_AE, 1512 - 115);
  // hand computation (see the comments in the loop above)
  const drug = { tp: G_DRUG - 3, fp: 1, fn: 3 }; // FN: rec 2, 4, 5; FP: rec 2
  const strictAe = { fp: 3, fn: 1 + 1 + n4 + n5 }; // FP: rec 1, 3, 7; FN: rec 0, 3, 4, 5
  const relaxedAe = { fp: 2, fn: 1 + n4 + n5 }; // rec 3 matches after lowercasing
  const prfOf = (c: { tp: number; fp: number; fn: number }) => [
    c.tp / (c.tp + c.fp),
    c.tp / (c.tp + c.fn),
    (2 * c.tp) / (2 * c.tp + c.fp + c.fn),
  ];

  for (const [mode, aeC, exact] of [
    ['strict', strictAe, 700 - 7],
    ['relaxed', relaxedAe, 700 - 6],
  ] as const) {
    const args = [
      'score',
      '--task',
      'ade-email',
      '--gold',
      gold,
      '--pred',
      pred,
      '--json',
      ...(mode === 'relaxed' ? ['--relaxed'] : []),
    ];
    const r = await runCli(args);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as JsonReport;
    const aeCounts = { tp: G_AE - aeC.fn, ...aeC };
    const byType = Object.fromEntries(j.metrics.perType.map((t) => [t.type, t]));
    assert.deepEqual([byType.drug_name!.tp, byType.drug_name!.fp, byType.drug_name!.fn], [drug.tp, drug.fp, drug.fn]);
    assert.deepEqual(
      [byType.adverse_event!.tp, byType.adverse_event!.fp, byType.adverse_event!.fn],
      [aeCounts.tp, aeCounts.fp, aeCounts.fn],
    );
    const micro = { tp: drug.tp + aeCounts.tp, fp: drug.fp + aeCounts.fp, fn: drug.fn + aeCounts.fn };
    const m = j.metrics.micro;
    assertClose([m.precision, m.recall, m.f1], prfOf(micro), { atol: 1e-12, label: `${mode} micro P/R/F1` });
    const d = byType.drug_name!,
      a = byType.adverse_event!;
    assertClose([d.precision, d.recall, d.f1, a.precision, a.recall, a.f1], [...prfOf(drug), ...prfOf(aeCounts)], {
      atol: 1e-12,
      label: `${mode} per-type P/R/F1`,
    });
    assertClose([j.metrics.macro.f1], [(prfOf(drug)[2]! + prfOf(aeCounts)[2]!) / 2], {
      atol: 1e-12,
      label: `${mode} macro F1`,
    });
    assert.equal(j.metrics.exact.correct, exact);
    assert.deepEqual(j.counts.missingIds, [recs[4]!.id]);
    assert.deepEqual(j.counts.extraIds, ['not-in-gold']);
    assert.equal(j.counts.unparsedLines, 1);
    console.log(
      `  ${mode}: micro P ${m.precision.toFixed(4)} R ${m.recall.toFixed(4)} F1 ${m.f1.toFixed(4)} (n4=${n4}, n5=${n5})`,
    );
  }
});

test('score: report files are written and self-contained', { skip }, async () => {
  const { dir, recs, gold } = setup();
  const pred = join(dir, 'pred.jsonl');
  writeFileSync(
    pred,
    jsonl(
      recs
        .slice(0, 20)
        .map((r, i) => ({ id: r.id, output: i === 0 ? '{"drug_name": "<b>x</b>", "adverse_events": []}' : r.raw })),
    ),
  );
  const out = join(dir, 'rep');
  const r = await runCli(['score', '--task', 'ade-email', '--gold', gold, '--pred', pred, '--report', out]);
  assert.equal(r.code, 0, r.err);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.doesNotMatch(html, /<(?:link|img)\b|src=|href=/); // no external assets
  assert.match(html, /&lt;b&gt;x&lt;\/b&gt;/); // model text is escaped
  assert.match(html, /drug_name: 1 false positives/);
  const j = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { counts: { missingIds: string[] } };
  assert.equal(j.counts.missingIds.length, 680);
});

test('score: bad input gives one clear line and a non-zero exit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medlora-score-err-'));
  const gold = join(dir, 'gold.jsonl');
  const pred = join(dir, 'pred.jsonl');
  writeFileSync(gold, jsonl([{ id: 'a', task: 'chemicals', input: 'x', gold: ['x'] }]) + '{"id": "b", oops\n');
  writeFileSync(pred, jsonl([{ id: 'a', output: '- x' }]));
  let r = await runCli(['score', '--task', 'chemicals', '--gold', gold, '--pred', pred]);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`${gold.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: not valid JSON`));
  writeFileSync(gold, jsonl([{ id: 'a', task: 'chemicals', input: 'x', gold: ['x'] }]));
  r = await runCli(['score', '--task', 'diseases', '--gold', gold, '--pred', pred]);
  assert.equal(r.code, 1);
  assert.match(r.err, /no gold records with "task": "diseases" \(1 records of other tasks\)/);
  r = await runCli(['score', '--task', 'qa', '--gold', gold, '--pred', pred]);
  assert.match(r.err, /free text/);
  r = await runCli(['score', '--task', 'nope', '--gold', gold, '--pred', pred]);
  assert.match(r.err, /unknown task "nope"/);
  writeFileSync(pred, jsonl([{ id: 'a' }]));
  r = await runCli(['score', '--task', 'chemicals', '--gold', gold, '--pred', pred]);
  assert.match(r.err, /pred\.jsonl:1: needs "output"/);
  writeFileSync(pred, jsonl([{ id: 'a', pred: 'x' }]));
  r = await runCli(['score', '--task', 'chemicals', '--gold', gold, '--pred', pred]);
  assert.match(
    r.err,
    /pred\.jsonl:1: "pred" for task chemicals does not match its answer schema: \$: expected an array/,
  );
  writeFileSync(gold, jsonl([{ id: 'a', task: 'chemicals', gold: ['x'] }]));
  writeFileSync(pred, jsonl([{ id: 'a', output: '- x' }]));
  r = await runCli(['score', '--task', 'chemicals', '--gold', gold, '--pred', pred, '--ground']);
  assert.match(r.err, /gold record "a" has no "input" text/);
  r = await runCli(['score', '--task', 'chemicals', '--gold', join(dir, 'missing.jsonl'), '--pred', pred]);
  assert.match(r.err, /cannot read .*missing\.jsonl/);
  assert.equal(r.code, 1);
});

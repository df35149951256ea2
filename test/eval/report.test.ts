// `medlora score` options on small hand-made sets (symmetry, relaxed matching, filters) and the report / comparison
// writers. Expected counts are worked out in the comments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './capture.js';
import { scoreFiles } from '../../src/eval/score.js';
import { DEFAULT_MATCH } from '../../src/eval/match.js';
import {
  compareHtml,
  compareText,
  readReportJson,
  renderHtml,
  renderText,
  writeReport,
} from '../../src/eval/report.js';

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

function files(gold: unknown[], pred: unknown[]) {
  const dir = mkdtempSync(join(tmpdir(), 'medlora-report-'));
  const g = join(dir, 'gold.jsonl'),
    p = join(dir, 'pred.jsonl');
  writeFileSync(g, jsonl(gold));
  writeFileSync(p, jsonl(pred));
  return { g, p };
}

// two DDI records: gold and a prediction with a reversed symmetric pair, a reversed directional pair, and a case change
const ddiGold = [
  {
    id: 'd1',
    task: 'ddi-triplets',
    input: 'Aspirin and warfarin ...',
    gold: [
      { head: 'aspirin', relation: 'effect', tail: 'warfarin' },
      { head: 'ketoconazole', relation: 'may increase the serum concentration of', tail: 'midazolam' },
    ],
  },
  { id: 'd2', task: 'ddi-triplets', input: 'x', gold: [] },
];
const ddiPred = [
  {
    id: 'd1',
    output: '<warfarin, effect, aspirin>\n<midazolam, may increase the serum concentration of, ketoconazole>',
  },
  { id: 'd2', output: 'none' },
];

test('score CLI: symmetric defaults and overrides for ddi-triplets', async () => {
  const { g, p } = files(ddiGold, ddiPred);
  const run = async (...extra: string[]) => {
    const r = await runCli(['score', '--task', 'ddi-triplets', '--gold', g, '--pred', p, '--json', ...extra]);
    assert.equal(r.code, 0, r.err);
    return (JSON.parse(r.out) as { metrics: { micro: { tp: number; fp: number; fn: number } } }).metrics.micro;
  };
  // default: "effect" (DDI 2013) is unordered -> 1 TP; the DrugBank relation is ordered -> FP 1, FN 1
  const def = await run();
  assert.deepEqual([def.tp, def.fp, def.fn], [1, 1, 1]);
  const all = await run('--symmetric');
  assert.deepEqual([all.tp, all.fp, all.fn], [2, 0, 0]);
  const none = await run('--directional');
  assert.deepEqual([none.tp, none.fp, none.fn], [0, 2, 2]);
  const listed = await run('--symmetric-relations', 'may increase the serum concentration of');
  assert.deepEqual([listed.tp, listed.fp, listed.fn], [1, 1, 1]); // now only the DrugBank relation is unordered
  const r = await runCli(['score', '--task', 'ddi-triplets', '--gold', g, '--pred', p, '--symmetric', '--directional']);
  assert.equal(r.code, 1);
  assert.match(r.err, /contradict/);
});

test('score CLI: relaxed matching and prediction filters change the counts as computed by hand', async () => {
  const gold = [
    {
      id: 'c1',
      task: 'chemicals',
      input: 'Treatment with L\u2011dopa and Haloperidol; no other drugs.',
      gold: ['L-dopa', 'haloperidol'],
    },
  ];
  const pred = [{ id: 'c1', output: '- L\u2011dopa\n- Haloperidol.\n- drugs\n- Li\n- clozapine' }];
  const { g, p } = files(gold, pred);
  const micro = async (...extra: string[]) => {
    const r = await runCli(['score', '--task', 'chemicals', '--gold', g, '--pred', p, '--json', ...extra]);
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out) as {
      metrics: { micro: { tp: number; fp: number; fn: number } };
      counts: { filteredItems: number };
      options: unknown;
    };
    return [j.metrics.micro.tp, j.metrics.micro.fp, j.metrics.micro.fn, j.counts.filteredItems];
  };
  // strict: parsed names are "L‑dopa" (U+2011), "Haloperidol" (trailing "." dropped by the parser), "drugs", "Li",
  // "clozapine": nothing equals "L-dopa" / "haloperidol" exactly -> TP 0, FP 5, FN 2
  assert.deepEqual(await micro(), [0, 5, 2, 0]);
  // relaxed: the dash and the case are normalised -> TP 2, FP 3 (drugs, Li, clozapine), FN 0
  assert.deepEqual(await micro('--relaxed'), [2, 3, 0, 0]);
  // relaxed without dash normalisation: "l‑dopa" != "l-dopa" -> TP 1, FP 4, FN 1
  assert.deepEqual(await micro('--relaxed', '--no-dashes'), [1, 4, 1, 0]);
  // + stop-list removes "drugs", min length 3 removes "Li", grounding removes "clozapine" -> TP 2, FP 0, FN 0
  assert.deepEqual(await micro('--relaxed', '--stop-list', 'default', '--min-length', '3', '--ground'), [2, 0, 0, 3]);
  const bad = await runCli(['score', '--task', 'chemicals', '--gold', g, '--pred', p, '--min-length', '-1']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--min-length expects a whole number/);
});

test('reports: text and HTML show the options, the comparison lines runs up by type', () => {
  const { g, p } = files(ddiGold, ddiPred);
  const a = scoreFiles('ddi-triplets', g, p);
  const b = scoreFiles('ddi-triplets', g, p, { ...DEFAULT_MATCH, symmetric: 'all' });
  assert.match(renderText(a), /symmetric: default/);
  assert.match(renderText(a), /exact match: 1\/2 records/);
  const html = renderHtml(a);
  assert.match(html, /may increase the serum concentration of: 1 false positives/);
  assert.match(html, /&lt;midazolam, may increase the serum concentration of, ketoconazole&gt;/);
  const t = compareText([
    { name: 'default', result: a },
    { name: 'all-symmetric', result: b },
  ]);
  const lines = t.split('\n');
  assert.match(lines[0]!, /^F1\s+default\s+all-symmetric$/);
  // effect: F1 1 in both; the DrugBank relation: 0 (1 FP, 1 FN) vs 1; micro F1 2*1/(2+1+1) = 0.5 vs 1
  assert.ok(
    lines.some((l) => /^effect\s+1\.000\s+1\.000$/.test(l)),
    t,
  );
  assert.ok(
    lines.some((l) => /^may increase the serum concentration of\s+0\.000\s+1\.000$/.test(l)),
    t,
  );
  assert.ok(
    lines.some((l) => /^micro F1\s+0\.500\s+1\.000$/.test(l)),
    t,
  );
  assert.match(compareHtml([{ name: 'a', result: a }]), /<table>/);
});

test('reports: report.json round-trips into a comparison; errors are grouped by type; bad files are named', () => {
  const { g, p } = files(ddiGold, ddiPred);
  const a = scoreFiles('ddi-triplets', g, p);
  const dir = mkdtempSync(join(tmpdir(), 'medlora-rt-'));
  const { json } = writeReport(dir, a);
  const back = readReportJson(json);
  assert.equal(compareText([{ name: 'x', result: back }]), compareText([{ name: 'x', result: a }]));
  const j = JSON.parse(readFileSync(json, 'utf8')) as {
    errorsByType: Record<string, { fp: unknown[]; fn: unknown[] }>;
  };
  // the ordered DrugBank relation was reversed: one FP and one FN of that type, nothing else wrong
  assert.deepEqual(Object.keys(j.errorsByType), ['may increase the serum concentration of']);
  assert.deepEqual(j.errorsByType['may increase the serum concentration of']!.fp, [
    { id: 'd1', text: '<midazolam, may increase the serum concentration of, ketoconazole>' },
  ]);
  writeFileSync(join(dir, 'bad.json'), '{"task": "x"}');
  assert.throws(() => readReportJson(join(dir, 'bad.json')), /bad\.json: not a medlora score report/);
  const other = { ...back, task: 'chemicals' as const };
  assert.throws(
    () =>
      compareText([
        { name: 'a', result: back },
        { name: 'b', result: other },
      ]),
    /different tasks/,
  );
});

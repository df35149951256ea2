// `medlora eval` and `medlora extract` end to end on the tiny fixture model: the documented files, --json, --compare,
// default output folder, --no-constrain, and the error paths (one clear line, non-zero exit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setNumThreads } from '../../src/tensor/index.js';
import type { MedRecord } from '../../src/data/schema.js';
import { runCli } from '../eval/capture.js';
import { CHEM_SENTENCE, taskRecords, tinyFixture, tunedExtractArgs, writeRecords } from './tiny.js';

setNumThreads(1);

const GEN = ['--max-new-tokens', '48', '--batch-size', '4', '--quiet'];

function readJsonl(f: string): Array<Record<string, unknown>> {
  return readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('medlora eval: predictions.jsonl, scores.json, report.json, report.html; --json prints scores.json', async () => {
  const fx = tinyFixture();
  const data = writeRecords('test-chem.jsonl', taskRecords().chemicals as MedRecord[]);
  const out = join(fx.root, 'eval-1');
  const r = await runCli(['eval', '--model', fx.model, '--data', data, '--out', out, '--json', ...GEN]);
  assert.equal(r.code, 0, r.err);
  const scores = JSON.parse(readFileSync(join(out, 'scores.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(JSON.parse(r.out), scores);
  assert.equal(scores.task, 'chemicals');
  assert.equal(scores.records, 3);
  assert.equal(scores.parse_rate, 1);
  assert.ok(typeof scores.test_loss === 'number' && Number.isFinite(scores.test_loss));
  assert.equal(scores.perplexity, Math.exp(scores.test_loss as number));
  const preds = readJsonl(join(out, 'predictions.jsonl'));
  assert.deepEqual(
    preds.map((p) => p.id),
    ['c1', 'c2', 'c3'],
  );
  for (const p of preds)
    for (const k of ['output', 'pred', 'unparsed', 'finish_reason', 'new_tokens']) assert.ok(k in p, k);
  const rep = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual((rep.eval as Record<string, unknown>).metrics, scores.metrics);
  // every gold chemical the model missed is a false negative listed under its type
  const missed = (rep.errorsByType as Record<string, { fn: unknown[] }>).chemical?.fn.length ?? 0;
  assert.equal(missed, (scores.metrics as { micro: { fn: number } }).micro.fn);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /<h1>medlora eval: chemicals/);
  assert.match(html, /parse rate/);
  if (missed) assert.match(html, /false negatives/);
});

test('medlora eval: default output folder beside the adapter; text table with loss, perplexity, parse rate', async () => {
  const fx = tinyFixture();
  const data = writeRecords('test-ae.jsonl', taskRecords()['drug-ae'] as MedRecord[]);
  const r = await runCli(['eval', '--model', fx.model, '--adapter', fx.adapter, '--data', data, ...GEN]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /micro \(pooled counts\)/);
  assert.match(r.out, /test loss [\d.]+ {2}perplexity/);
  assert.match(r.out, /parse rate 1\.000/);
  assert.ok(existsSync(join(fx.root, 'run', 'adapter-eval', 'scores.json')));
});

test('medlora eval --compare: base and adapter side by side in one report; base run equals a plain base eval', async () => {
  const fx = tinyFixture();
  const data = writeRecords('test-ddi.jsonl', taskRecords()['ddi-triplets'] as MedRecord[]);
  const plain = join(fx.root, 'eval-base');
  assert.equal((await runCli(['eval', '--model', fx.model, '--data', data, '--out', plain, ...GEN])).code, 0);
  const out = join(fx.root, 'eval-cmp');
  const r = await runCli([
    'eval',
    '--model',
    fx.model,
    '--data',
    data,
    '--out',
    out,
    '--compare',
    'base',
    '--compare',
    `tuned=${fx.adapter}`,
    ...GEN,
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ +base +tuned$/m);
  assert.match(r.out, /^test loss +[\d.]+ +[\d.]+$/m);
  const s = JSON.parse(readFileSync(join(out, 'scores.json'), 'utf8')) as { runs: Array<Record<string, unknown>> };
  assert.deepEqual(
    s.runs.map((x) => x.name),
    ['base', 'tuned'],
  );
  assert.equal(s.runs[1]!.adapter, fx.adapter);
  const base = JSON.parse(readFileSync(join(plain, 'scores.json'), 'utf8')) as Record<string, unknown>;
  // the adapter is removed again after its run, and greedy decoding is deterministic: same numbers for base
  assert.deepEqual(s.runs[0]!.metrics, base.metrics);
  assert.equal(s.runs[0]!.test_loss, base.test_loss);
  assert.notEqual(s.runs[1]!.test_loss, base.test_loss);
  assert.deepEqual(
    readJsonl(join(out, 'base', 'predictions.jsonl')).map((p) => p.output),
    readJsonl(join(plain, 'predictions.jsonl')).map((p) => p.output),
  );
  assert.ok(existsSync(join(out, 'tuned', 'predictions.jsonl')));
  // the README's form: --adapter A --compare base (A is evaluated after base, named after its run folder)
  const out2 = join(fx.root, 'eval-cmp-adapter');
  const r2 = await runCli([
    'eval',
    '--model',
    fx.model,
    '--data',
    data,
    '--out',
    out2,
    '--adapter',
    fx.adapter,
    '--compare',
    'base',
    ...GEN,
  ]);
  assert.equal(r2.code, 0, r2.err);
  const s2 = JSON.parse(readFileSync(join(out2, 'scores.json'), 'utf8')) as { runs: Array<Record<string, unknown>> };
  assert.equal(s2.runs.length, 2);
  assert.equal(s2.runs[0]!.name, 'base');
  assert.deepEqual(
    s2.runs.map((x) => x.test_loss),
    s.runs.map((x) => x.test_loss),
  );
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /<h2>base<\/h2>/);
  assert.match(html, /<h2>tuned<\/h2>/);
  const rep = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { runs: unknown[] };
  assert.equal(rep.runs.length, 2);
});

test('medlora eval --no-constrain and --limit', async () => {
  const fx = tinyFixture();
  const data = writeRecords('test-email.jsonl', taskRecords()['ade-email'] as MedRecord[]);
  const out = join(fx.root, 'eval-free');
  const r = await runCli([
    'eval',
    '--model',
    fx.model,
    '--data',
    data,
    '--out',
    out,
    '--no-constrain',
    '--limit',
    '1',
    '--no-loss',
    '--json',
    ...GEN,
  ]);
  assert.equal(r.code, 0, r.err);
  const s = JSON.parse(r.out) as {
    records: number;
    test_loss: unknown;
    settings: { constrain: boolean };
    timing: { constraint_ms_per_token: number };
  };
  assert.equal(s.records, 1);
  assert.equal(s.test_loss, null);
  assert.equal(s.settings.constrain, false);
  assert.equal(s.timing.constraint_ms_per_token, 0);
});

test('medlora extract: TEXT and --input FILE give JSON lines with spans', async () => {
  const fx = tinyFixture();
  const text = CHEM_SENTENCE;
  const one = await runCli([...tunedExtractArgs(fx, 'chemicals'), text, ...GEN]);
  assert.equal(one.code, 0, one.err);
  const line = JSON.parse(one.out) as {
    id: string;
    task: string;
    output: string;
    result: string[];
    entities: Array<{ text: string; span: [number, number] | null }>;
  };
  assert.equal(line.id, '1');
  assert.equal(line.task, 'chemicals');
  assert.equal(line.entities.length, new Set(line.result).size);
  const file = join(fx.root, 'texts.jsonl');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(
    file,
    `${JSON.stringify({ id: 'x', text })}\n\n${JSON.stringify({ text: 'Aspirin reduced fever.' })}\n`,
  );
  const outFile = join(fx.root, 'extracted.jsonl');
  const many = await runCli([
    'extract',
    '--model',
    fx.model,
    '--task',
    'drug-ae',
    '--input',
    file,
    '--output',
    outFile,
    ...GEN,
  ]);
  assert.equal(many.code, 0, many.err);
  const rows = readJsonl(outFile);
  assert.deepEqual(
    rows.map((r) => r.id),
    ['x', '3'],
  );
  for (const r of rows) assert.deepEqual(r.unparsed, []);
});

test('eval / extract error paths: one clear line, non-zero exit', async () => {
  const fx = tinyFixture();
  const mixed = writeRecords('mixed.jsonl', [...taskRecords().chemicals, ...taskRecords().diseases] as MedRecord[]);
  const qa = writeRecords('qa.jsonl', [{ id: 'q', task: 'qa', input: 'x?', gold: 'y' }]);
  const chem = writeRecords('chem.jsonl', taskRecords().chemicals as MedRecord[]);
  const bad = join(fx.root, 'bad.jsonl');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(bad, '{"id": "a", "text": "fine"}\n{not json\n');
  const cases: Array<[string[], RegExp]> = [
    [
      ['eval', '--model', fx.model, '--data', mixed],
      /holds records of several tasks \(chemicals, diseases\); choose one with --task/,
    ],
    [['eval', '--model', fx.model, '--data', mixed, '--task', 'influences'], /no records of task influences/],
    [['eval', '--model', fx.model, '--data', qa], /"qa" is not a structured extraction task/],
    [['eval', '--model', fx.model, '--data', chem, '--limit', '0'], /--limit must be a positive integer/],
    [
      ['eval', '--model', fx.model, '--data', chem, '--adapter', fx.adapter, '--compare', fx.adapter],
      /two compared runs share the name/,
    ],
    [['eval', '--model', fx.root, '--data', chem], /no config\.json/],
    [['eval', '--model', fx.model, '--data', chem, '--prompt', 'vicuna'], /--prompt must be alpaca or chat/],
    [['eval', '--model', fx.model, '--data', chem, '--compare', 'base', '--compare', 'base'], /share the name "base"/],
    [
      ['eval', '--model', fx.model, '--data', chem, '--max-new-tokens', '0'],
      /--max-new-tokens must be a positive integer/,
    ],
    [
      ['extract', '--model', fx.model, '--task', 'ade-email', 'text', '--max-new-tokens', '8'],
      /--max-new-tokens 8 is too small for a constrained ade-email answer \(needs at least \d+\)/,
    ],
    [
      ['extract', '--model', fx.model, '--task', 'chemicals', 'a', '--input', bad],
      /give TEXT or --input FILE, not both/,
    ],
    [['extract', '--model', fx.model, '--task', 'chemicals'], /give one TEXT argument/],
    [['extract', '--model', fx.model, '--task', 'qa', 'text'], /"qa" is not a structured extraction task/],
    [['extract', '--model', fx.model, '--task', 'chemicals', '--input', bad], /bad\.jsonl:2: invalid JSON/],
    [['extract', '--model', fx.model, '--task', 'chemicals', 'x', '--prompt', 'chat'], /no chat_template/],
  ];
  const { readdirSync } = await import('node:fs');
  const before = readdirSync('.').filter((f) => f.startsWith('eval-')).length;
  for (const [argv, re] of cases) {
    const r = await runCli([...argv, '--quiet']);
    assert.notEqual(r.code, 0, argv.join(' '));
    assert.match(r.err, re, argv.join(' '));
    assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
  }
  // a failed run leaves no (default-named) output folder behind
  assert.equal(
    readdirSync('.').filter((f) => f.startsWith('eval-')).length,
    before,
    'an error path wrote an eval-* folder',
  );
});

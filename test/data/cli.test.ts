// The data commands end to end (spawned CLI: real exit codes and messages) and the malformed-input paths:
// bad JSON, missing fields, unknown task, empty file, wrong encoding; plus stats and preview functions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { loadRecords } from '../../src/data/jsonl.js';
import { computeStats } from '../../src/cli/commands/data-stats.js';
import { previewFile } from '../../src/cli/commands/data-preview.js';
import { lengthStats, percentile, renderStatsHtml, countStats } from '../../src/data/stats.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import type { MedRecord } from '../../src/data/schema.js';
import type { PreviewSummary } from '../../src/data/preview.js';

const skip = hasShared() ? false : 'no ../shared fixtures (hasShared() is false)';
const bin = join(packageRoot(), 'bin', 'medlora.js');
const cli = (...args: string[]): { rc: number; out: string; err: string } => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { rc: r.status ?? -1, out: r.stdout, err: r.stderr };
};
const tmp = (): string => mkdtempSync(join(tmpdir(), 'medlora-cli-'));
const rec = (id: string, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({
    id,
    task: 'drug-ae',
    input: `sentence ${id}`,
    gold: [{ head: 'aspirin', tail: 'bleeding' }],
    ...extra,
  });

test('malformed record files: clear one-line errors naming file:line and field, non-zero exit', () => {
  const d = tmp();
  const cases: Array<[string, string | Buffer, RegExp]> = [
    ['badjson.jsonl', `${rec('a')}\n{"id": "b", \n`, /badjson\.jsonl:2: invalid JSON/],
    [
      'missing.jsonl',
      `${rec('a')}\n${JSON.stringify({ id: 'b', task: 'qa', gold: 'x' })}\n`,
      /missing\.jsonl:2: field "input" is missing/,
    ],
    [
      'task.jsonl',
      `${JSON.stringify({ id: 'a', task: 'ner', input: 'x', gold: [] })}\n`,
      /task\.jsonl:1: field "task": unknown task "ner"/,
    ],
    [
      'gold.jsonl',
      `${JSON.stringify({ id: 'a', task: 'drug-ae', input: 'x', gold: [{ head: 'a' }] })}\n`,
      /gold\.jsonl:1: field "gold" \(task drug-ae\): gold\[0\]: field "tail"/,
    ],
    ['empty.jsonl', '', /empty\.jsonl: is empty/],
    [
      'latin1.jsonl',
      Buffer.concat([
        Buffer.from(`${rec('a')}\n{"id":"b","task":"qa","input":"caf`),
        Buffer.from([0xe9]),
        Buffer.from('","gold":"x"}\n'),
      ]),
      /latin1\.jsonl:2: not valid UTF-8/,
    ],
    [
      'utf16.jsonl',
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(rec('a'), 'utf16le')]),
      /utf16\.jsonl: is UTF-16 encoded; expected UTF-8/,
    ],
    ['dupid.jsonl', `${rec('a')}\n${rec('a')}\n`, /record id "a" occurs twice/],
  ];
  for (const [name, content, re] of cases) {
    const f = join(d, name);
    writeFileSync(f, content);
    const r = cli('data', 'stats', f);
    assert.notEqual(r.rc, 0, name);
    assert.match(r.err, re, name);
    assert.equal(r.err.trim().split('\n').length, 1, `${name}: one line, no stack: ${r.err}`);
  }
  const r = cli('data', 'stats', join(d, 'nope.jsonl'));
  assert.match(r.err, /nope\.jsonl: no such file/);
});

test('--skip-invalid reads the other lines and reports the bad ones', async () => {
  const d = tmp();
  const f = join(d, 'mixed.jsonl');
  writeFileSync(f, `${rec('a')}\nnot json\n${rec('b')}\n\n${JSON.stringify({ id: 'c', task: 'qa' })}\n${rec('d')}\n`);
  const { records, report } = await loadRecords(f, { skipInvalid: true });
  assert.deepEqual(
    records.map((r) => r.id),
    ['a', 'b', 'd'],
  );
  assert.deepEqual(
    report.invalid.map((x) => x.line),
    [2, 5],
  );
  const r = cli('data', 'stats', f, '--skip-invalid', '--json');
  assert.equal(r.rc, 0, r.err);
  const j = JSON.parse(r.out) as { records: number; invalid: Array<{ line: number }> };
  assert.equal(j.records, 3);
  assert.deepEqual(
    j.invalid.map((x) => x.line),
    [2, 5],
  );
  assert.notEqual(cli('data', 'stats', f).rc, 0);
});

test('CLI: import ddi2013, split twice with one seed -> identical files, leak-free report', { skip }, () => {
  const d = tmp();
  const out = join(d, 'ddi.jsonl');
  const imp = cli(
    'data',
    'import',
    'ddi2013',
    sharedPath('corpora', 'ddi2013', 'DDICorpus', 'Train'),
    '--out',
    out,
    '--json',
  );
  assert.equal(imp.rc, 0, imp.err);
  const counts = JSON.parse(imp.out) as { records: number; byLabel: Record<string, number> };
  assert.deepEqual(counts.byLabel, { effect: 1687, mechanism: 1319, advise: 826, int: 188 });
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, counts.records);
  for (const o of ['s1', 's2'])
    assert.equal(cli('data', 'split', out, '--out', join(d, o), '--seed', '5', '--group', 'meta.doc').rc, 0);
  for (const f of ['train.jsonl', 'validation.jsonl', 'test.jsonl']) {
    assert.equal(readFileSync(join(d, 's1', f), 'utf8'), readFileSync(join(d, 's2', f), 'utf8'), f);
  }
  const rep = JSON.parse(readFileSync(join(d, 's1', 'split-report.json'), 'utf8')) as {
    counts: Record<string, { total: number }>;
  };
  const lines = (f: string): number =>
    readFileSync(join(d, 's1', f), 'utf8')
      .trim()
      .split('\n').length;
  assert.equal(rep.counts.train!.total, lines('train.jsonl'));
  const bad = cli('data', 'split', out, '--out', join(d, 's3'), '--ratios', '0.5,0.2');
  assert.match(bad.err, /--ratios must sum to 1/);
  assert.match(cli('data', 'import', 'nope', out, '--out', join(d, 'x.jsonl')).err, /unknown import format "nope"/);
  assert.match(
    cli('data', 'import', 'ddi2013', out, '--out', join(d, 'x.jsonl')).err,
    /is a file; expected a directory/,
  );
  // a failed import leaves no output file behind
  const broken = join(d, 'broken.jsonl');
  writeFileSync(broken, `${JSON.stringify({ prompt: 'q', completion: 'a' })}\n{oops\n`);
  const r = cli('data', 'import', 'jsonl', broken, '--out', join(d, 'y.jsonl'));
  assert.match(r.err, /broken\.jsonl:2: invalid JSON/);
  assert.ok(!existsSync(join(d, 'y.jsonl')) && !existsSync(join(d, 'y.jsonl.partial')));
});

test('stats: nearest-rank percentiles and suggested max_length, hand-computed', () => {
  const xs = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
  // nearest rank: p50 -> ceil(0.5*10)=5th = 50; p90 -> 9th = 90; p95 -> ceil(9.5)=10th = 100; p99 -> 10th = 100
  assert.deepEqual(
    [50, 90, 95, 99].map((p) => percentile(xs, p)),
    [50, 90, 100, 100],
  );
  const l = lengthStats([...xs, 401], 'tokens');
  assert.equal(l.percentiles.p99, 401); // ceil(0.99*11) = 11th
  assert.equal(l.suggestedMaxLength, 408); // smallest multiple of 8 >= 401
  assert.equal(
    l.histogram.reduce((a, b) => a + b.count, 0),
    11,
  );
  assert.equal(lengthStats([5], 'chars').suggestedMaxLength, null);
  const recs: MedRecord[] = [JSON.parse(rec('a')) as MedRecord, { id: 'b', task: 'drug-ae', input: 'x', gold: [] }];
  const st = countStats(recs);
  assert.deepEqual(st.byLabel, { 'drug-ae': { ADE: 1 } });
  assert.deepEqual(st.emptyAnswers, { 'drug-ae': 1 });
  st.lengths = l;
  const html = renderStatsHtml(st, 'f<1>.jsonl');
  assert.match(html, /<svg[^>]*>.*<rect/s);
  assert.ok(html.includes('f&lt;1&gt;.jsonl') && !/<script|https?:\/\/(?!www\.w3\.org)/.test(html));
});

test('stats with a real tokenizer: lengths equal the encoded prompt + target + EOS', { skip }, async () => {
  const tok = loadTokenizer(sharedPath('fixtures', 'hf', 'gpt2'));
  const recs: MedRecord[] = [JSON.parse(rec('a')) as MedRecord];
  const st = computeStats(recs, 'alpaca', tok);
  const r = recs[0]!;
  const prompt = `Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nExtract every drug and the adverse effect it caused from the input and output them one per line as "drug | adverse effect". Output "none" if the input reports no adverse drug effect.\n\n### Input:\n${r.input}\n\n### Response:\n`;
  const n = tok.encode(prompt).length + tok.encode('aspirin | bleeding').length + 1;
  assert.equal(st.lengths!.max, n);
  assert.equal(st.lengths!.suggestedMaxLength, Math.ceil(n / 8) * 8);
});

test('preview on hand-built records: the mask is exactly on the target tokens and EOS', { skip }, async () => {
  const d = tmp();
  const f = join(d, 'hand.jsonl');
  const recs: MedRecord[] = [
    { id: 'h1', task: 'chemicals', input: 'Famotidine-associated delirium.', gold: ['Famotidine'] },
    { id: 'h2', task: 'diseases', input: 'No disease here.', gold: [] },
    { id: 'h3', task: 'qa', input: 'What is warfarin?', gold: 'An anticoagulant.' },
    { id: 'h4', task: 'qa', input: 'unused', gold: 'x' },
  ];
  writeFileSync(f, recs.map((r) => JSON.stringify(r)).join('\n'));
  const targets = ['- Famotidine', 'none', 'An anticoagulant.'];
  for (const model of ['SmolLM2-135M-Instruct', 'Mistral-7B-v0.1']) {
    const tok = loadTokenizer(sharedPath('fixtures', 'hf', model));
    const res = (await previewFile(f, tok, { n: 3, style: 'alpaca' })) as PreviewSummary[];
    assert.equal(res.length, 3);
    res.forEach((p, i) => {
      const tgt = [...tok.encode(targets[i]!, { addSpecialTokens: false }), tok.eosId!];
      const trained = p.tokens.filter((t) => t.trained);
      assert.deepEqual(
        trained.map((t) => t.id),
        tgt,
        `${model} ${p.id}`,
      );
      // trained tokens are one contiguous block at the very end, and the last is EOS
      assert.equal(trained[0]!.index, p.tokens.length - tgt.length);
      assert.equal(p.tokens[p.tokens.length - 1]!.token, tok.eosToken);
      assert.ok(p.tokens.slice(0, -tgt.length).every((t) => !t.trained));
    });
  }
  assert.ok(existsSync(f));
});

// The streaming line reader: CRLF, UTF-8 BOM, a last line without newline, lines split across read chunks,
// multi-byte characters across chunk boundaries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { readLines, writeJsonl, loadRecords } from '../../src/data/jsonl.js';

async function lines(content: string | Buffer): Promise<Array<[number, string]>> {
  const f = join(mkdtempSync(join(tmpdir(), 'medlora-jsonl-')), 'x.txt');
  writeFileSync(f, content);
  const out: Array<[number, string]> = [];
  for await (const l of readLines(f)) out.push([l.line, l.text]);
  return out;
}

test('readLines: CRLF, BOM, no final newline', async () => {
  assert.deepEqual(await lines('\ufeffa\r\nb\n\nc'), [
    [1, 'a'],
    [2, 'b'],
    [3, ''],
    [4, 'c'],
  ]);
});

test('readLines: long lines and multi-byte characters across 64 KiB chunks', async () => {
  const big = 'é'.repeat(70000); // 140,000 bytes: spans read chunks, some boundaries inside a 2-byte character
  const got = await lines(`${big}\nx\n`);
  assert.equal(got.length, 2);
  assert.equal(got[0]![1], big);
  assert.deepEqual(got[1], [2, 'x']);
});

test('writeJsonl then loadRecords round-trips records', async () => {
  const f = join(mkdtempSync(join(tmpdir(), 'medlora-jsonl-')), 'r.jsonl');
  const recs = [
    { id: 'a', task: 'qa', input: 'q\nwith newline', gold: 'a' },
    { id: 'b', task: 'chemicals', input: 't', gold: ['x'], meta: { doc: '1' } },
  ];
  assert.equal(await writeJsonl(f, recs), 2);
  const { records, report } = await loadRecords(f);
  assert.deepEqual(records, recs);
  assert.equal(report.records, 2);
});

test('writeJsonl creates missing parent folders (as `data import --out new/dir/file.jsonl` needs)', async () => {
  const f = join(mkdtempSync(join(tmpdir(), 'medlora-jsonl-')), 'new', 'dir', 'out.jsonl');
  assert.equal(await writeJsonl(f, [{ a: 1 }, { b: 2 }]), 2);
  const lines: string[] = [];
  for await (const l of readLines(f)) lines.push(l.text);
  assert.deepEqual(lines, ['{"a":1}', '{"b":2}']);
});

// Streaming JSONL: read line by line with line numbers (UTF-8 checked strictly), validate canonical records against
// schema.ts with errors naming file:line and the field, optionally skip-and-count invalid lines; and a writer.
import { createReadStream, createWriteStream, existsSync, mkdirSync, statSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { MedloraError } from '../util/errors.js';
import type { MedRecord } from './schema.js';
import { getTask, isTaskName } from './tasks.js';
import { taskNames } from './tasks/index.js';

export interface RawLine {
  /** 1-based line number */
  line: number;
  text: string;
}

/** Lines of a file as UTF-8 text, streamed; invalid UTF-8 and UTF-16 files are rejected naming the line. */
export async function* readLines(file: string): AsyncGenerator<RawLine> {
  if (!existsSync(file)) throw new MedloraError(`${file}: no such file`);
  if (statSync(file).isDirectory()) throw new MedloraError(`${file}: is a directory, expected a file`);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let carry: Buffer = Buffer.alloc(0);
  let lineNo = 0;
  let first = true;
  const decode = (buf: Buffer, n: number): string => {
    try {
      return decoder.decode(buf);
    } catch {
      throw new MedloraError(`${file}:${n}: not valid UTF-8 text (convert the file to UTF-8)`);
    }
  };
  for await (const chunk of createReadStream(file)) {
    let buf = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    if (first) {
      first = false;
      if (buf.length >= 2 && ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff))) {
        throw new MedloraError(
          `${file}: is UTF-16 encoded; expected UTF-8 (convert the file, e.g. iconv -f UTF-16 -t UTF-8)`,
        );
      }
      if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3); // UTF-8 BOM
    }
    let start = 0;
    for (let i = buf.indexOf(10, start); i >= 0; i = buf.indexOf(10, start)) {
      lineNo++;
      let end = i;
      if (end > start && buf[end - 1] === 13) end--; // CRLF
      yield { line: lineNo, text: decode(buf.subarray(start, end), lineNo) };
      start = i + 1;
    }
    carry = Buffer.from(buf.subarray(start));
  }
  if (carry.length) {
    lineNo++;
    yield { line: lineNo, text: decode(carry, lineNo) };
  }
}

/** Check a parsed value is a canonical record; returns the first problem (naming the field) or undefined. */
export function recordProblem(v: unknown): string | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'expected a JSON object (a record)';
  const o = v as Record<string, unknown>;
  if (typeof o.id !== 'string' || o.id === '') return 'field "id" is missing or not a non-empty string';
  if (typeof o.task !== 'string') return 'field "task" is missing or not a string';
  if (!isTaskName(o.task))
    return `field "task": unknown task "${o.task}" (known: ${taskNames().join(', ')}; a task of your own is defined by a task file (a JSON Schema) or a config task: section)`;
  if (typeof o.input !== 'string') return 'field "input" is missing or not a string';
  if (!('gold' in o)) return 'field "gold" is missing';
  const g = getTask(o.task).validate(o.gold);
  if (g) return `field "gold" (task ${o.task}): ${g}`;
  if (o.instruction !== undefined && typeof o.instruction !== 'string') return 'field "instruction" must be a string';
  if (o.meta !== undefined && (typeof o.meta !== 'object' || o.meta === null || Array.isArray(o.meta)))
    return 'field "meta" must be an object';
  return undefined;
}

export interface ReadOptions {
  /** skip malformed lines (counted and reported) instead of stopping at the first */
  skipInvalid?: boolean;
}

export interface ReadReport {
  file: string;
  records: number;
  /** blank lines are ignored */
  blank: number;
  invalid: Array<{ line: number; error: string }>;
}

/**
 * Stream values from a JSONL file. `check` returns an error message for a bad value. Without skipInvalid the first bad
 * line throws `file:line: message`; with it, bad lines are collected in `report.invalid`. An empty file is an error.
 */
export async function* readJsonl<T>(
  file: string,
  check: (v: unknown) => string | undefined,
  report: ReadReport,
  opts: ReadOptions = {},
): AsyncGenerator<T, void> {
  let any = false;
  for await (const { line, text } of readLines(file)) {
    if (text.trim() === '') {
      report.blank++;
      continue;
    }
    any = true;
    let v: unknown;
    let err: string | undefined;
    try {
      v = JSON.parse(text);
    } catch (e) {
      err = `invalid JSON (${(e as Error).message})`;
    }
    if (!err) err = check(v);
    if (err) {
      if (!opts.skipInvalid) throw new MedloraError(`${file}:${line}: ${err}`);
      report.invalid.push({ line, error: err });
      continue;
    }
    report.records++;
    yield v as T;
  }
  if (!any) throw new MedloraError(`${file}: is empty (expected one JSON object per line)`);
}

export function newReport(file: string): ReadReport {
  return { file, records: 0, blank: 0, invalid: [] };
}

/** Stream canonical records from a JSONL file (validated). */
export function readRecords(
  file: string,
  report: ReadReport = newReport(file),
  opts: ReadOptions = {},
): AsyncGenerator<MedRecord> {
  return readJsonl<MedRecord>(file, recordProblem, report, opts);
}

/** Read all records into memory (splits and stats need them all), failing on duplicate ids. */
export async function loadRecords(
  file: string,
  opts: ReadOptions = {},
): Promise<{ records: MedRecord[]; report: ReadReport }> {
  const report = newReport(file);
  const records: MedRecord[] = [];
  const ids = new Map<string, number>();
  for await (const r of readRecords(file, report, opts)) {
    if (ids.has(r.id))
      throw new MedloraError(
        `${file}: record id "${r.id}" occurs twice (records ${ids.get(r.id)! + 1} and ${records.length + 1}); ids must be unique`,
      );
    ids.set(r.id, records.length);
    records.push(r);
  }
  return { records, report };
}

/** One-line summary of skipped lines, for CLI output. */
export function invalidSummary(r: ReadReport, max = 5): string {
  if (r.invalid.length === 0) return '';
  const shown = r.invalid
    .slice(0, max)
    .map((x) => `  ${r.file}:${x.line}: ${x.error}`)
    .join('\n');
  return `skipped ${r.invalid.length} invalid line(s):\n${shown}${r.invalid.length > max ? `\n  ... and ${r.invalid.length - max} more` : ''}`;
}

/** Streaming JSONL writer (respects back-pressure). */
export class JsonlWriter {
  private readonly stream: WriteStream;
  count = 0;
  constructor(readonly file: string) {
    // `--out ddi/all.jsonl` in a fresh folder: create the folder rather than fail with ENOENT
    mkdirSync(dirname(file), { recursive: true });
    this.stream = createWriteStream(file, { encoding: 'utf8' });
  }
  async write(v: unknown): Promise<void> {
    this.count++;
    if (!this.stream.write(`${JSON.stringify(v)}\n`)) await once(this.stream, 'drain');
  }
  async close(): Promise<void> {
    await new Promise<void>((res, rej) => this.stream.end((e?: Error | null) => (e ? rej(e) : res())));
  }
}

export async function writeJsonl(file: string, values: Iterable<unknown> | AsyncIterable<unknown>): Promise<number> {
  const w = new JsonlWriter(file);
  for await (const v of values) await w.write(v);
  await w.close();
  return w.count;
}

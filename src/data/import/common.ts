// What every importer returns: a stream of canonical records plus counts (filled while streaming) that the CLI
// reports and the tests compare with each corpus' SOURCE.md.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../../util/errors.js';
import type { MedRecord } from '../schema.js';

export interface ImportCounts {
  records: number;
  /** counts per task */
  byTask: Record<string, number>;
  /** counts per relation / entity type (gold items) */
  byLabel: Record<string, number>;
  /** importer-specific counters (documents, negatives, skipped, ...) */
  notes: Record<string, number>;
  /** human-readable warnings (e.g. one untyped positive pair) */
  warnings: string[];
}

export interface Importer {
  format: string;
  description: string;
  /** stream records from PATH; `counts` is filled as records are produced */
  read(path: string, counts: ImportCounts, opts: ImportOptions): AsyncGenerator<MedRecord>;
}

export interface ImportOptions {
  /** generic JSONL: the task to give records (default: detected, else qa) */
  task?: string;
  /** generic JSONL with a field mapping: the record's input text field (dotted path allowed) */
  inputField?: string;
  /** generic JSONL with a field mapping: the field holding the structured gold answer (or its JSON text) */
  goldField?: string;
  skipInvalid?: boolean;
  /** drugbank-sentences: the interaction templates CSV */
  templates?: string;
  /** invalid lines skipped (generic JSONL with skipInvalid) */
  invalid?: Array<{ file: string; line: number; error: string }>;
}

export function newCounts(): ImportCounts {
  return { records: 0, byTask: {}, byLabel: {}, notes: {}, warnings: [] };
}

export function bump(m: Record<string, number>, k: string, n = 1): void {
  m[k] = (m[k] ?? 0) + n;
}

/** Count a produced record into `counts` (task and labels). */
export function countRecord(c: ImportCounts, task: string, labels: string[]): void {
  c.records++;
  bump(c.byTask, task);
  for (const l of labels) bump(c.byLabel, l);
}

export function requireDir(path: string, what: string): void {
  if (!existsSync(path)) throw new MedloraError(`${path}: no such directory (${what})`);
  if (!statSync(path).isDirectory()) throw new MedloraError(`${path}: is a file; expected a directory (${what})`);
}

export function requireFile(path: string, what: string): void {
  if (!existsSync(path)) throw new MedloraError(`${path}: no such file (${what})`);
  if (statSync(path).isDirectory()) throw new MedloraError(`${path}: is a directory; expected a file (${what})`);
}

/** All files under dir (recursively) whose names end with ext, sorted for reproducibility. */
export function walkFiles(dir: string, ext: string): string[] {
  const out: string[] = [];
  const rec = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) rec(p);
      else if (n.endsWith(ext)) out.push(p);
    }
  };
  rec(dir);
  return out;
}

/** Strict UTF-8 decode of a whole file's bytes, naming the file on failure. */
export function decodeUtf8(buf: Buffer, file: string): string {
  try {
    const s = new TextDecoder('utf-8', { fatal: true }).decode(buf);
    return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
  } catch {
    throw new MedloraError(`${file}: not valid UTF-8 text`);
  }
}

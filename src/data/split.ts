// Reproducible train / validation / test splits: exact-duplicate removal by normalised text hash, units that keep
// every record sharing an input text (and, with --group, a source document) together, per-class stratified
// assignment with a seeded PRNG, and a hard leak check by input text and by group.
import { createHash } from 'node:crypto';
import { MedloraError, fieldError } from '../util/errors.js';
import type { MedRecord } from './schema.js';
import { labelsOf, renderTarget } from './tasks.js';

export type Stratify = 'task' | 'relation' | 'none';
export const SPLIT_NAMES = ['train', 'validation', 'test'] as const;

/** mulberry32 (Tommy Ettinger, public domain): a small 32-bit seeded PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates shuffle in place with the given PRNG. */
export function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** Normalised text for duplicate / leak detection: Unicode NFKC, lower case, whitespace collapsed, trimmed. */
export function normaliseText(s: string): string {
  return s.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
}
export function textHash(s: string): string {
  return createHash('sha256').update(normaliseText(s)).digest('hex').slice(0, 16);
}

/** Read a dotted path such as "meta.doc" from a record. */
export function getPath(r: MedRecord, path: string): unknown {
  let v: unknown = r;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

export function parseRatios(s: string): number[] {
  const xs = s.split(',').map((x) => Number(x.trim()));
  if ((xs.length !== 2 && xs.length !== 3) || xs.some((x) => !Number.isFinite(x) || x < 0)) {
    throw fieldError('ratios', `ratios expects 2 or 3 non-negative numbers (train,validation[,test]), got "${s}"`);
  }
  const sum = xs.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-6) throw fieldError('ratios', `ratios must sum to 1, got ${sum} ("${s}")`);
  return xs;
}

export interface SplitOptions {
  ratios: number[];
  seed: number;
  stratify: Stratify;
  /** dotted path of the group key (e.g. meta.doc); records sharing it stay in one split */
  group?: string;
}

export interface SplitReport {
  seed: number;
  ratios: number[];
  stratify: Stratify;
  group: string | null;
  input_records: number;
  /** exact duplicates removed (same task, normalised input and target as an earlier record) */
  duplicates_dropped: Array<{ id: string; duplicate_of: string }>;
  /** records sharing a normalised input with another record of a different task/target (kept, placed together) */
  shared_input_records: number;
  units: number;
  counts: Record<string, { total: number; byClass: Record<string, number> }>;
}

/** The class a record is stratified by: its task, or its rarest relation / entity label ("none" when it has none). */
function classifier(records: MedRecord[], stratify: Stratify): (r: MedRecord) => string {
  if (stratify === 'none') return () => 'all';
  if (stratify === 'task') return (r) => r.task;
  const freq = new Map<string, number>();
  for (const r of records)
    for (const l of new Set(labelsOf(r))) freq.set(`${r.task}:${l}`, (freq.get(`${r.task}:${l}`) ?? 0) + 1);
  return (r) => {
    const ls = [...new Set(labelsOf(r))].map((l) => `${r.task}:${l}`);
    if (ls.length === 0) return `${r.task}:none`;
    return ls.sort((a, b) => freq.get(a)! - freq.get(b)! || (a < b ? -1 : 1))[0]!;
  };
}

/** Integer targets per split for n items by the largest-remainder method (so they sum to n). */
export function apportion(n: number, ratios: number[]): number[] {
  const raw = ratios.map((r) => r * n);
  const out = raw.map(Math.floor);
  let left = n - out.reduce((a, b) => a + b, 0);
  const order = raw.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left-- <= 0) break;
    out[i]!++;
  }
  return out;
}

export function splitRecords(all: MedRecord[], opts: SplitOptions): { splits: MedRecord[][]; report: SplitReport } {
  if (all.length === 0) throw new MedloraError('nothing to split: no records');
  // 1. exact duplicates
  const seen = new Map<string, string>();
  const records: MedRecord[] = [];
  const dropped: SplitReport['duplicates_dropped'] = [];
  for (const r of all) {
    const key = `${r.task}\u0000${textHash(r.input)}\u0000${normaliseText(renderTarget(r))}`;
    const prev = seen.get(key);
    if (prev !== undefined) {
      dropped.push({ id: r.id, duplicate_of: prev });
      continue;
    }
    seen.set(key, r.id);
    records.push(r);
  }
  // 2. units: union-find over shared input hash and shared group value
  const parent = records.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const union = (a: number, b: number): void => {
    const x = find(a),
      y = find(b);
    if (x !== y) parent[Math.max(x, y)] = Math.min(x, y);
  };
  const byInput = new Map<string, number>();
  const byGroup = new Map<string, number>();
  let shared = 0;
  records.forEach((r, i) => {
    const h = textHash(r.input);
    const j = byInput.get(h);
    if (j === undefined) byInput.set(h, i);
    else {
      union(i, j);
      shared++;
    }
    if (opts.group) {
      const g = getPath(r, opts.group);
      if (g === undefined || g === null || g === '')
        throw new MedloraError(`record ${r.id} has no ${opts.group} (needed to group by ${opts.group})`);
      const gk = typeof g === 'string' ? g : JSON.stringify(g);
      const k = byGroup.get(gk);
      if (k === undefined) byGroup.set(gk, i);
      else union(i, k);
    }
  });
  const units = new Map<number, number[]>();
  records.forEach((_, i) => {
    const u = find(i);
    const l = units.get(u) ?? [];
    l.push(i);
    units.set(u, l);
  });
  // 3. stratified assignment. Each record has a class (task, or its rarest label); each class gets integer targets
  //    per split (largest remainder of ratio * n). Units are shuffled with the seeded PRNG, then placed largest
  //    first (multi-record units while there is room to absorb them, single records last to fill the remaining
  //    deficits exactly), each into the split whose summed deficit over the unit's records is largest. With
  //    single-record units every class ends within one record of ratio * n in every split.
  const cls = classifier(records, opts.stratify);
  const recClass = records.map((r) => cls(r));
  const classN = new Map<string, number>();
  for (const c of recClass) classN.set(c, (classN.get(c) ?? 0) + 1);
  const classes = [...classN.keys()].sort();
  const target = new Map(classes.map((c) => [c, apportion(classN.get(c)!, opts.ratios)]));
  const have = new Map(classes.map((c) => [c, opts.ratios.map(() => 0)]));
  const rand = mulberry32(opts.seed);
  const unitList = shuffle([...units.values()], rand);
  unitList.sort((a, b) => b.length - a.length); // stable: shuffled order kept within a size
  const splits: MedRecord[][] = opts.ratios.map(() => []);
  for (const u of unitList) {
    let best = -1;
    let bestScore = -Infinity;
    for (let s = 0; s < opts.ratios.length; s++) {
      if (opts.ratios[s] === 0) continue;
      let score = 0;
      for (const i of u) score += target.get(recClass[i]!)![s]! - have.get(recClass[i]!)![s]!;
      if (score > bestScore) {
        bestScore = score;
        best = s;
      }
    }
    for (const i of u) {
      have.get(recClass[i]!)![best]!++;
      splits[best]!.push(records[i]!);
    }
  }
  const counts: SplitReport['counts'] = {};
  opts.ratios.forEach((_, s) => {
    const byClass: Record<string, number> = {};
    let total = 0;
    for (const c of classes) {
      byClass[c] = have.get(c)![s]!;
      total += byClass[c]!;
    }
    counts[SPLIT_NAMES[s]!] = { total, byClass };
  });
  // keep file order within each split (stable, readable diffs)
  const order = new Map(records.map((r, i) => [r, i]));
  for (const s of splits) s.sort((a, b) => order.get(a)! - order.get(b)!);
  checkLeaks(splits, opts.group);
  return {
    splits,
    report: {
      seed: opts.seed,
      ratios: opts.ratios,
      stratify: opts.stratify,
      group: opts.group ?? null,
      input_records: all.length,
      duplicates_dropped: dropped,
      shared_input_records: shared,
      units: units.size,
      counts,
    },
  };
}

/** Hard check: no normalised input text (and no group value) in two splits; the error names the records. */
export function checkLeaks(splits: MedRecord[][], group?: string): void {
  const where = new Map<string, { split: number; id: string }>();
  const whereGroup = new Map<string, { split: number; id: string }>();
  splits.forEach((recs, s) => {
    for (const r of recs) {
      const h = textHash(r.input);
      const w = where.get(h);
      if (w && w.split !== s) {
        throw new MedloraError(
          `leak: record ${r.id} (${SPLIT_NAMES[s]}) has the same input text as record ${w.id} (${SPLIT_NAMES[w.split]})`,
        );
      }
      if (!w) where.set(h, { split: s, id: r.id });
      if (group) {
        const g = JSON.stringify(getPath(r, group));
        const x = whereGroup.get(g);
        if (x && x.split !== s) {
          throw new MedloraError(
            `leak: ${group}=${g} is in ${SPLIT_NAMES[x.split]} (record ${x.id}) and ${SPLIT_NAMES[s]} (record ${r.id})`,
          );
        }
        if (!x) whereGroup.set(g, { split: s, id: r.id });
      }
    }
  });
}

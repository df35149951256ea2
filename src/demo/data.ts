// Demo step 1: the demo data. DrugBank-style interaction sentences generated from templates and real drug names
// (src/data/demo-corpus.ts), written as canonical JSONL, read back through the validating reader as any imported
// corpus is, and split train / validation / test with `data split`'s library call, grouped by drug pair so the
// held-out sentences are about drug pairs the model never saw together.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateDemoCorpus } from '../data/demo-corpus.js';
import { loadRecords, writeJsonl } from '../data/jsonl.js';
import type { MedRecord, Triplet } from '../data/schema.js';
import { SPLIT_NAMES, splitRecords, type SplitReport } from '../data/split.js';

export interface DemoDataOptions {
  /** records to generate */
  count: number;
  seed: number;
  ratios?: number[];
}

export interface DemoData {
  dir: string;
  corpus: string;
  files: { train: string; validation: string; test: string; report: string };
  train: MedRecord[];
  validation: MedRecord[];
  test: MedRecord[];
  report: SplitReport;
}

/** The unordered drug pair of a triplet ("a|b" with a <= b): the unit kept on one side of the split. */
export function pairKey(t: Pick<Triplet, 'head' | 'tail'>): string {
  return [t.head.toLowerCase(), t.tail.toLowerCase()].sort().join('|');
}

/**
 * meta.pair_group for every record: records connected through a shared drug pair (a two-sentence record links its
 * two pairs) get the same group, so grouping by it keeps every pair in a single split.
 */
export function assignPairGroups(records: MedRecord<'ddi-triplets'>[]): void {
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let r = k;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(k, r);
    return r;
  };
  const add = (k: string): void => {
    if (!parent.has(k)) parent.set(k, k);
  };
  for (const r of records) {
    const keys = r.gold.map(pairKey);
    keys.forEach(add);
    for (const k of keys.slice(1)) {
      const a = find(keys[0]!),
        b = find(k);
      if (a !== b) parent.set(a < b ? b : a, a < b ? a : b);
    }
  }
  for (const r of records) {
    const g = r.gold.length ? find(pairKey(r.gold[0]!)) : `record:${r.id}`;
    r.meta = { ...r.meta, pair_group: g };
  }
}

/** Generate, write, read back (validated) and split the demo corpus under `dir`. */
export async function buildDemoData(dir: string, o: DemoDataOptions): Promise<DemoData> {
  mkdirSync(dir, { recursive: true });
  const generated = generateDemoCorpus({ count: o.count, seed: o.seed });
  assignPairGroups(generated);
  const corpus = join(dir, 'demo-corpus.jsonl');
  await writeJsonl(corpus, generated);
  const { records } = await loadRecords(corpus);
  const ratios = o.ratios ?? [0.8, 0.1, 0.1];
  const { splits, report } = splitRecords(records, {
    ratios,
    seed: o.seed,
    stratify: 'relation',
    group: 'meta.pair_group',
  });
  const files = {
    train: join(dir, 'train.jsonl'),
    validation: join(dir, 'validation.jsonl'),
    test: join(dir, 'test.jsonl'),
    report: join(dir, 'split-report.json'),
  };
  for (let s = 0; s < SPLIT_NAMES.length; s++) await writeJsonl(files[SPLIT_NAMES[s]!], splits[s] ?? []);
  writeFileSync(files.report, `${JSON.stringify({ file: corpus, ...report }, null, 2)}\n`);
  return { dir, corpus, files, train: splits[0]!, validation: splits[1]!, test: splits[2]!, report };
}

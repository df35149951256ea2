// ADE corpus v2 importer (DRUG-AE.rel positives + ADE-NEG.txt negatives): one drug-ae record per (PMID, sentence),
// gold = its distinct (drug, adverse effect) pairs; negative sentences get an empty gold (rendered "none").
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../../util/errors.js';
import type { MedRecord, Pair } from '../schema.js';
import { bump, countRecord, decodeUtf8, requireDir, type Importer } from './common.js';

export const adeCorpus: Importer = {
  format: 'ade-corpus',
  description: 'ADE corpus v2 directory with DRUG-AE.rel (and ADE-NEG.txt for negatives) -> drug-ae records',
  async *read(path, counts) {
    const dir = existsSync(path) && statSync(path).isFile() ? join(path, '..') : path;
    requireDir(dir, 'the ADE corpus folder holding DRUG-AE.rel and ADE-NEG.txt');
    const relFile = join(dir, 'DRUG-AE.rel');
    if (!existsSync(relFile)) throw new MedloraError(`${dir}: DRUG-AE.rel not found`);
    const byKey = new Map<string, { pmid: string; sentence: string; pairs: Pair[]; seen: Set<string> }>();
    const sentences = new Set<string>();
    decodeUtf8(readFileSync(relFile), relFile)
      .split(/\r?\n/)
      .forEach((l, i) => {
        if (l.trim() === '') return;
        const f = l.split('|');
        if (f.length !== 8)
          throw new MedloraError(
            `${relFile}:${i + 1}: ${f.length} "|"-separated fields, expected 8 (PMID|sentence|AE|begin|end|drug|begin|end)`,
          );
        const [pmid, sentence, ae, , , drug] = f as [string, string, string, string, string, string];
        bump(counts.notes, 'relations');
        sentences.add(sentence);
        const key = `${pmid}|${sentence}`;
        const e = byKey.get(key) ?? { pmid, sentence, pairs: [], seen: new Set<string>() };
        byKey.set(key, e);
        const pk = `${drug}\u0000${ae}`;
        if (!e.seen.has(pk)) {
          e.seen.add(pk);
          e.pairs.push({ head: drug, tail: ae });
        }
      });
    counts.notes.positive_sentences = sentences.size;
    let n = 0;
    for (const e of byKey.values()) {
      const r: MedRecord<'drug-ae'> = {
        id: `ade-${++n}`,
        task: 'drug-ae',
        input: e.sentence,
        gold: e.pairs,
        meta: { doc: e.pmid, corpus: 'ade-corpus' },
      };
      countRecord(
        counts,
        'drug-ae',
        e.pairs.map(() => 'ADE'),
      );
      yield r;
    }
    const negFile = join(dir, 'ADE-NEG.txt');
    if (!existsSync(negFile)) {
      counts.warnings.push(`${dir}: ADE-NEG.txt not found; no negative sentences imported`);
      return;
    }
    const negKeys = new Set<string>();
    const lines = decodeUtf8(readFileSync(negFile), negFile).split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i]!;
      if (l.trim() === '') continue;
      const m = /^(\d+) NEG (.*)$/.exec(l);
      if (!m) throw new MedloraError(`${negFile}:${i + 1}: expected "PMID NEG sentence"`);
      bump(counts.notes, 'negative_rows');
      const key = `${m[1]}|${m[2]}`;
      if (negKeys.has(key)) {
        bump(counts.notes, 'negative_duplicates');
        continue;
      }
      negKeys.add(key);
      if (byKey.has(key)) {
        bump(counts.notes, 'negative_also_positive');
        continue;
      }
      const r: MedRecord<'drug-ae'> = {
        id: `ade-${++n}`,
        task: 'drug-ae',
        input: m[2]!,
        gold: [],
        meta: { doc: m[1], corpus: 'ade-corpus' },
      };
      countRecord(counts, 'drug-ae', []);
      yield r;
    }
  },
};

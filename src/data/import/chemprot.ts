// ChemProt (BioCreative VI) importer over an official split directory (<split>_abstracts.tsv, _entities.tsv,
// _gold_standard.tsv): one chemprot record per abstract, gold = the evaluated relations (CPR:3,4,5,6,9) as
// <chemical text, CPR group, gene text>. Input is title + " " + abstract (entity offsets index into it).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../../util/errors.js';
import type { MedRecord, Triplet } from '../schema.js';
import { bump, countRecord, decodeUtf8, requireDir, type Importer } from './common.js';

function findFile(dir: string, suffix: string): string {
  const f = readdirSync(dir).filter((n) => n.endsWith(suffix));
  if (f.length !== 1)
    throw new MedloraError(
      `${dir}: expected exactly one *${suffix} file (ChemProt split directory), found ${f.length}`,
    );
  return join(dir, f[0]!);
}

function tsvRows(file: string, minFields: number): Array<{ line: number; f: string[] }> {
  const out: Array<{ line: number; f: string[] }> = [];
  decodeUtf8(readFileSync(file), file)
    .split(/\r?\n/)
    .forEach((l, i) => {
      if (l.trim() === '') return;
      const f = l.split('\t').map((x) => x.trim());
      if (f.length < minFields)
        throw new MedloraError(`${file}:${i + 1}: ${f.length} tab-separated fields, expected at least ${minFields}`);
      out.push({ line: i + 1, f });
    });
  return out;
}

export const chemprot: Importer = {
  format: 'chemprot',
  description: 'ChemProt official split directory (abstracts, entities, gold_standard TSVs) -> chemprot records',
  async *read(path, counts) {
    requireDir(path, 'a ChemProt split directory such as chemprot_training');
    const abstracts = tsvRows(findFile(path, '_abstracts.tsv'), 3);
    const entFile = findFile(path, '_entities.tsv');
    const goldFile = findFile(path, '_gold_standard.tsv');
    const ents = new Map<string, { type: string; text: string }>();
    for (const { line, f } of tsvRows(entFile, 6)) {
      ents.set(`${f[0]}:${f[1]}`, { type: f[2]!, text: f[5]! });
      bump(counts.notes, `entities_${f[2]}`);
      void line;
    }
    const gold = new Map<string, Triplet[]>();
    for (const { line, f } of tsvRows(goldFile, 4)) {
      const [pmid, group, a1, a2] = f as [string, string, string, string];
      const m1 = /^Arg1:(T\d+)$/.exec(a1),
        m2 = /^Arg2:(T\d+)$/.exec(a2);
      if (!m1 || !m2)
        throw new MedloraError(`${goldFile}:${line}: expected "Arg1:Tn" and "Arg2:Tn", got "${a1}" "${a2}"`);
      const e1 = ents.get(`${pmid}:${m1[1]}`),
        e2 = ents.get(`${pmid}:${m2[1]}`);
      if (!e1 || !e2)
        throw new MedloraError(
          `${goldFile}:${line}: entity ${!e1 ? m1[1] : m2[1]} of PMID ${pmid} is not in ${entFile}`,
        );
      if (!/^CPR:\d+$/.test(group))
        throw new MedloraError(`${goldFile}:${line}: relation group "${group}", expected CPR:n`);
      const list = gold.get(pmid) ?? [];
      list.push({ head: e1.text, relation: group, tail: e2.text });
      gold.set(pmid, list);
      bump(counts.notes, 'gold_relations');
    }
    const seen = new Set<string>();
    for (const { line, f } of abstracts) {
      const [pmid, title, abs] = f as [string, string, string];
      if (seen.has(pmid)) throw new MedloraError(`${path}: abstracts file line ${line}: PMID ${pmid} appears twice`);
      seen.add(pmid);
      bump(counts.notes, 'abstracts');
      const g = gold.get(pmid) ?? [];
      const r: MedRecord<'chemprot'> = {
        id: `chemprot-${pmid}`,
        task: 'chemprot',
        input: `${title} ${abs}`,
        gold: g,
        meta: { doc: pmid, corpus: 'chemprot' },
      };
      countRecord(
        counts,
        'chemprot',
        g.map((t) => t.relation),
      );
      yield r;
    }
    for (const pmid of gold.keys())
      if (!seen.has(pmid)) throw new MedloraError(`${goldFile}: PMID ${pmid} has gold relations but no abstract`);
  },
};

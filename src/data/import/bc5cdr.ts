// BioCreative V CDR importer (PubTator): per document, three records - chemicals, diseases (mention surface forms,
// first occurrence order, case-insensitive de-duplication) and influences (CID MeSH pairs written with the surface
// name of each concept's first mention). Input is title + " " + abstract (the text PubTator offsets index into).
import { labelsOf } from '../tasks.js';
import { readFileSync } from 'node:fs';
import { MedloraError } from '../../util/errors.js';
import type { MedRecord, Pair } from '../schema.js';
import { bump, countRecord, decodeUtf8, requireFile, type Importer } from './common.js';

interface Doc {
  pmid: string;
  title?: string;
  abstract?: string;
  line: number;
  mentions: Array<{ text: string; type: string; ids: string[] }>;
  cids: Array<[string, string]>;
}

function uniqueCI(xs: string[]): string[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = x.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function parsePubtator(text: string, file: string): Doc[] {
  const docs: Doc[] = [];
  let cur: Doc | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((l, i) => {
    const n = i + 1;
    if (l.trim() === '') {
      cur = undefined;
      return;
    }
    const ta = /^(\d+)\|([ta])\|(.*)$/.exec(l);
    if (ta) {
      if (!cur || cur.pmid !== ta[1]) {
        cur = { pmid: ta[1]!, line: n, mentions: [], cids: [] };
        docs.push(cur);
      }
      if (ta[2] === 't') cur.title = ta[3];
      else cur.abstract = ta[3];
      return;
    }
    const f = l.split('\t');
    if (!cur || f[0] !== cur.pmid)
      throw new MedloraError(
        `${file}:${n}: annotation line for PMID ${f[0]} outside its document (expected "PMID|t|title" first)`,
      );
    if (f[1] === 'CID') {
      if (f.length !== 4)
        throw new MedloraError(`${file}:${n}: CID line needs 4 tab-separated fields, got ${f.length}`);
      cur.cids.push([f[2]!, f[3]!]);
      return;
    }
    if (f.length < 6)
      throw new MedloraError(
        `${file}:${n}: mention line needs PMID, start, end, text, type, ID (tab-separated), got ${f.length} fields`,
      );
    const [, s, e, mtext, type, ids] = f as [string, string, string, string, string, string];
    if (!/^\d+$/.test(s) || !/^\d+$/.test(e))
      throw new MedloraError(`${file}:${n}: start/end offsets must be integers`);
    if (type !== 'Chemical' && type !== 'Disease')
      throw new MedloraError(`${file}:${n}: mention type "${type}", expected Chemical or Disease`);
    cur.mentions.push({ text: mtext, type, ids: ids.split('|') });
  });
  for (const d of docs)
    if (d.title === undefined || d.abstract === undefined)
      throw new MedloraError(`${file}:${d.line}: document ${d.pmid} lacks its |t| or |a| line`);
  return docs;
}

export const bc5cdr: Importer = {
  format: 'bc5cdr',
  description: 'BioCreative V CDR PubTator file -> chemicals, diseases and influences records per abstract',
  async *read(path, counts, opts) {
    requireFile(path, 'a PubTator file');
    const only = opts.task;
    if (only !== undefined && !['chemicals', 'diseases', 'influences'].includes(only)) {
      throw new MedloraError(
        `bc5cdr: task must be chemicals, diseases or influences (default: all three), got "${only}"`,
        { field: 'task' },
      );
    }
    const docs = parsePubtator(decodeUtf8(readFileSync(path), path), path);
    if (docs.length === 0) throw new MedloraError(`${path}: no PubTator documents found`);
    for (const d of docs) {
      bump(counts.notes, 'documents');
      const input = `${d.title} ${d.abstract}`;
      const chems = d.mentions.filter((m) => m.type === 'Chemical');
      const dis = d.mentions.filter((m) => m.type === 'Disease');
      bump(counts.notes, 'mentions_chemical', chems.length);
      bump(counts.notes, 'mentions_disease', dis.length);
      bump(counts.notes, 'cid', d.cids.length);
      const nameOf = (id: string, ms: typeof chems): string | undefined =>
        (ms.find((m) => m.ids.length === 1 && m.ids[0] === id) ?? ms.find((m) => m.ids.includes(id)))?.text;
      const pairs: Pair[] = [];
      for (const [c, dz] of d.cids) {
        const head = nameOf(c, chems),
          tail = nameOf(dz, dis);
        if (head === undefined || tail === undefined) {
          bump(counts.notes, 'cid_without_mention');
          counts.warnings.push(
            `${path}: PMID ${d.pmid}: CID ${c}-${dz} has no ${head === undefined ? 'chemical' : 'disease'} mention; left out`,
          );
          continue;
        }
        pairs.push({ head, tail });
      }
      const meta = { doc: d.pmid, corpus: 'bc5cdr' };
      const recs: MedRecord[] = [
        { id: `${d.pmid}-chemicals`, task: 'chemicals', input, gold: uniqueCI(chems.map((m) => m.text)), meta },
        { id: `${d.pmid}-diseases`, task: 'diseases', input, gold: uniqueCI(dis.map((m) => m.text)), meta },
        { id: `${d.pmid}-influences`, task: 'influences', input, gold: pairs, meta },
      ];
      for (const r of recs) {
        if (only !== undefined && r.task !== only) continue;
        countRecord(counts, r.task, labelsOf(r));
        yield r;
      }
    }
  },
};

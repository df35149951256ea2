// DDI Extraction 2013 importer (XML, one file per document): one ddi-triplets record per sentence, gold = the
// positive pairs as <e1 text, DDI type, e2 text>; negative pairs and untyped positives are counted, not emitted.
import { readFileSync } from 'node:fs';
import { MedloraError } from '../../util/errors.js';
import type { MedRecord, Triplet } from '../schema.js';
import { bump, countRecord, decodeUtf8, requireDir, walkFiles, type Importer } from './common.js';
import { parseXml, type XmlElement } from './xml.js';

/** The four DDI 2013 types (Segura-Bedmar et al. 2013 annotation guidelines). */
export const DDI_TYPES = ['mechanism', 'effect', 'advise', 'int'] as const;

function attr(el: XmlElement, k: string, file: string): string {
  const v = el.attrs[k];
  if (v === undefined) throw new MedloraError(`${file}:${el.line}: <${el.name}> lacks the "${k}" attribute`);
  return v;
}

export const ddi2013: Importer = {
  format: 'ddi2013',
  description: 'DDI Extraction 2013 XML directory (e.g. DDICorpus/Train, or its DrugBank / MedLine part)',
  async *read(path, counts) {
    requireDir(path, 'a DDI 2013 XML directory');
    const files = walkFiles(path, '.xml');
    if (files.length === 0) throw new MedloraError(`${path}: no .xml files found (expected the DDICorpus XML folders)`);
    for (const file of files) {
      const doc = parseXml(decodeUtf8(readFileSync(file), file), file);
      if (doc.name !== 'document')
        throw new MedloraError(`${file}:${doc.line}: root element is <${doc.name}>, expected <document>`);
      const docId = attr(doc, 'id', file);
      bump(counts.notes, 'documents');
      const part = docId.includes('MedLine') ? 'MedLine' : 'DrugBank';
      for (const s of doc.children) {
        if (s.name !== 'sentence') continue;
        bump(counts.notes, 'sentences');
        const sid = attr(s, 'id', file);
        const text = attr(s, 'text', file);
        const ents = new Map<string, string>();
        for (const e of s.children) if (e.name === 'entity') ents.set(attr(e, 'id', file), attr(e, 'text', file));
        bump(counts.notes, 'entities', ents.size);
        const gold: Triplet[] = [];
        for (const p of s.children) {
          if (p.name !== 'pair') continue;
          bump(counts.notes, 'pairs');
          const e1 = ents.get(attr(p, 'e1', file));
          const e2 = ents.get(attr(p, 'e2', file));
          if (e1 === undefined || e2 === undefined)
            throw new MedloraError(`${file}:${p.line}: pair ${p.attrs.id} names an entity not in its sentence`);
          const ddi = attr(p, 'ddi', file);
          if (ddi === 'false') {
            bump(counts.notes, 'negative');
            continue;
          }
          if (ddi !== 'true') throw new MedloraError(`${file}:${p.line}: ddi="${ddi}", expected "true" or "false"`);
          const type = p.attrs.type;
          if (type === undefined) {
            bump(counts.notes, 'untyped_positive');
            counts.warnings.push(`${file}:${p.line}: positive pair ${p.attrs.id} has no type; left out of the gold`);
            continue;
          }
          if (!(DDI_TYPES as readonly string[]).includes(type))
            throw new MedloraError(`${file}:${p.line}: unknown DDI type "${type}" (expected ${DDI_TYPES.join(', ')})`);
          gold.push({ head: e1, relation: type, tail: e2 });
        }
        const r: MedRecord<'ddi-triplets'> = {
          id: sid,
          task: 'ddi-triplets',
          input: text,
          gold,
          meta: { doc: docId, corpus: 'ddi2013', part, entities: [...ents.values()] },
        };
        countRecord(
          counts,
          'ddi-triplets',
          gold.map((t) => t.relation),
        );
        yield r;
      }
    }
  },
};

// DrugBank interaction sentences (CSV: Drug 1, Drug 2, Interaction Description) -> ddi-triplets records. Each
// sentence is matched to one of the 86 DeepDDI interaction templates (Interaction_information.csv) with the drug
// names substituted; the triplet's relation is the template's relation phrase (relationOfTemplate below).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MedloraError } from '../../util/errors.js';
import type { MedRecord } from '../schema.js';
import { bump, countRecord, decodeUtf8, requireFile, type Importer } from './common.js';
import { csvObjects } from './csv.js';

export interface InteractionTemplate {
  /** "DDI type N" */
  ddiType: string;
  /** text with #Drug1 / #Drug2 placeholders */
  template: string;
  /** relation phrase with #Drug1 as head and #Drug2 as tail */
  relation: string;
  regex: RegExp;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The relation phrase of a template, always read with #Drug1 as the head and #Drug2 as the tail:
 *  "#Drug1 <phrase> #Drug2 [...]."                      -> "<phrase>"  (e.g. "may increase the anticoagulant activities of")
 *  "The <X> of|to #Drug2 can be|is <increased|decreased|reduced> when ... #Drug1 ..."
 *                                                       -> "can increase|can decrease the <X> of|to"
 *  "The risk or severity of <Y> can be increased when #DrugA is combined with #DrugB."
 *                                                       -> "can increase the risk or severity of <Y> when combined with"
 * A template fitting none of these is an error (so a new template set cannot be silently mislabelled).
 */
export function relationOfTemplate(t: string): string {
  const s = t.trim().replace(/\.$/, '');
  let m = /^#Drug1 (.+?) #Drug2\b/.exec(s);
  if (m) return m[1]!;
  m = /^The risk or severity of (.+?) can be increased when #Drug[12] is combined with #Drug[12]$/.exec(s);
  if (m) return `can increase the risk or severity of ${m[1]} when combined with`;
  m = /^The (.+?) (of|to) #Drug2 (?:can be|is) (increased|decreased|reduced) when .*#Drug1\b/.exec(s);
  if (m) return `can ${m[3] === 'increased' ? 'increase' : 'decrease'} the ${m[1]} ${m[2]}`;
  throw new MedloraError(`interaction template not understood (no relation rule fits): ${t}`);
}

export function loadTemplates(file: string): InteractionTemplate[] {
  requireFile(file, 'the interaction templates CSV (Interaction_information.csv)');
  const rows = csvObjects(decodeUtf8(readFileSync(file), file), file, ['Description', 'DDI type']);
  const out: InteractionTemplate[] = [];
  const byRelation = new Map<string, string>();
  for (const r of rows) {
    const template = r.get('Description').trim();
    if (!template.includes('#Drug1') || !template.includes('#Drug2'))
      throw new MedloraError(`${file}:${r.line}: template lacks #Drug1 or #Drug2: ${template}`);
    const relation = relationOfTemplate(template);
    const ddiType = r.get('DDI type').trim();
    if (byRelation.has(relation))
      throw new MedloraError(
        `${file}:${r.line}: relation "${relation}" of ${ddiType} equals that of ${byRelation.get(relation)}`,
      );
    byRelation.set(relation, ddiType);
    // placeholders become lazy captures; a repeated #Drug2 must repeat the same name (back-reference)
    let seen1 = false,
      seen2 = false;
    const body = template
      .split(/(#Drug[12])/)
      .map((part) => {
        if (part === '#Drug1') {
          const g = seen1 ? '\\k<d1>' : '(?<d1>.+?)';
          seen1 = true;
          return g;
        }
        if (part === '#Drug2') {
          const g = seen2 ? '\\k<d2>' : '(?<d2>.+?)';
          seen2 = true;
          return g;
        }
        return escapeRe(part);
      })
      .join('');
    out.push({ ddiType, template, relation, regex: new RegExp(`^${body}$`) });
  }
  if (out.length === 0) throw new MedloraError(`${file}: no templates`);
  return out;
}

/** Templates whose pattern matches the sentence with exactly these drug names in the slots. */
export function matchTemplates(
  templates: InteractionTemplate[],
  sentence: string,
  drug1: string,
  drug2: string,
): InteractionTemplate[] {
  return templates.filter((t) => {
    const m = t.regex.exec(sentence);
    return m !== null && m.groups!.d1 === drug1 && m.groups!.d2 === drug2;
  });
}

export const drugbankSentences: Importer = {
  format: 'drugbank-sentences',
  description:
    'DrugBank interaction sentences CSV (Drug 1, Drug 2, Interaction Description); templates from --templates or Interaction_information.csv beside it',
  async *read(path, counts, opts) {
    requireFile(path, 'the DrugBank sentences CSV');
    const tplFile = opts.templates ?? join(dirname(path), 'Interaction_information.csv');
    if (!opts.templates && !existsSync(tplFile)) {
      throw new MedloraError(
        `${path}: the interaction templates file ${tplFile} is missing (give it as the templates option)`,
      );
    }
    const templates = loadTemplates(tplFile);
    counts.notes.templates = templates.length;
    const rows = csvObjects(decodeUtf8(readFileSync(path), path), path, [
      'Drug 1',
      'Drug 2',
      'Interaction Description',
    ]);
    if (rows.length === 0) throw new MedloraError(`${path}: has a header but no rows`);
    const used = new Set<string>();
    for (const r of rows) {
      const d1 = r.get('Drug 1').trim(),
        d2 = r.get('Drug 2').trim(),
        sentence = r.get('Interaction Description').trim();
      if (!d1 || !d2 || !sentence)
        throw new MedloraError(`${path}:${r.line}: empty Drug 1, Drug 2 or Interaction Description`);
      const hits = matchTemplates(templates, sentence, d1, d2);
      if (hits.length === 0) {
        bump(counts.notes, 'unmatched');
        if (!opts.skipInvalid)
          throw new MedloraError(
            `${path}:${r.line}: sentence matches no interaction template with "${d1}" as #Drug1 and "${d2}" as #Drug2: ${sentence}`,
          );
        counts.warnings.push(`${path}:${r.line}: no template matched; row skipped`);
        continue;
      }
      if (hits.length > 1)
        throw new MedloraError(
          `${path}:${r.line}: sentence matches ${hits.length} templates (${hits.map((h) => h.ddiType).join(', ')})`,
        );
      const t = hits[0]!;
      bump(counts.notes, 'matched');
      used.add(t.ddiType);
      const rec: MedRecord<'ddi-triplets'> = {
        id: `drugbank-${r.line}`,
        task: 'ddi-triplets',
        input: sentence,
        gold: [{ head: d1, relation: t.relation, tail: d2 }],
        meta: { corpus: 'drugbank-sentences', ddi_type: t.ddiType },
      };
      countRecord(counts, 'ddi-triplets', [t.relation]);
      yield rec;
    }
    counts.notes.types_used = used.size;
  },
};

// A generated DrugBank-style interaction corpus for demos and smoke tests (no corpus download needed): sentences
// built from interaction templates and well-known generic drug names (facts written here, not copied from a corpus),
// returned as canonical ddi-triplets records. Relation phrases follow the drugbank-sentences importer's convention
// (head = {drug1}, the drug acting on {drug2}), so demo data looks like imported data.
import { MedloraError } from '../util/errors.js';
import type { MedRecord, Triplet } from './schema.js';
import { mulberry32 } from './split.js';

/** Well-known generic drug names (WHO INNs / USAN). */
export const DEMO_DRUGS: readonly string[] = [
  'warfarin',
  'aspirin',
  'ibuprofen',
  'naproxen',
  'acetaminophen',
  'clopidogrel',
  'heparin',
  'apixaban',
  'rivaroxaban',
  'digoxin',
  'amiodarone',
  'verapamil',
  'diltiazem',
  'metoprolol',
  'atenolol',
  'propranolol',
  'lisinopril',
  'enalapril',
  'losartan',
  'spironolactone',
  'furosemide',
  'hydrochlorothiazide',
  'amlodipine',
  'simvastatin',
  'atorvastatin',
  'rosuvastatin',
  'metformin',
  'glipizide',
  'insulin glargine',
  'levothyroxine',
  'fluoxetine',
  'sertraline',
  'paroxetine',
  'citalopram',
  'venlafaxine',
  'amitriptyline',
  'lithium',
  'haloperidol',
  'quetiapine',
  'diazepam',
  'alprazolam',
  'lorazepam',
  'zolpidem',
  'tramadol',
  'morphine',
  'oxycodone',
  'fentanyl',
  'methadone',
  'carbamazepine',
  'phenytoin',
  'valproic acid',
  'lamotrigine',
  'rifampicin',
  'clarithromycin',
  'erythromycin',
  'ciprofloxacin',
  'fluconazole',
  'ketoconazole',
  'ritonavir',
  'cyclosporine',
  'tacrolimus',
  'methotrexate',
  'omeprazole',
  'theophylline',
  'sildenafil',
];

export interface DemoTemplate {
  /** sentence with {drug1} and {drug2} */
  text: string;
  /** relation phrase, read with {drug1} as head and {drug2} as tail */
  relation: string;
}

/** Interaction templates in the DrugBank style; the last ones name {drug2} first (reverse order in the sentence). */
export const DEMO_TEMPLATES: readonly DemoTemplate[] = [
  {
    text: '{drug1} may increase the anticoagulant activities of {drug2}.',
    relation: 'may increase the anticoagulant activities of',
  },
  {
    text: '{drug1} may decrease the antihypertensive activities of {drug2}.',
    relation: 'may decrease the antihypertensive activities of',
  },
  {
    text: '{drug1} may increase the serotonergic activities of {drug2}.',
    relation: 'may increase the serotonergic activities of',
  },
  {
    text: '{drug1} may increase the QTc-prolonging activities of {drug2}.',
    relation: 'may increase the QTc-prolonging activities of',
  },
  {
    text: '{drug1} may increase the central nervous system depressant (CNS depressant) activities of {drug2}.',
    relation: 'may increase the central nervous system depressant (CNS depressant) activities of',
  },
  {
    text: '{drug1} may increase the hypoglycemic activities of {drug2}.',
    relation: 'may increase the hypoglycemic activities of',
  },
  {
    text: '{drug1} may decrease the excretion rate of {drug2} which could result in a higher serum level.',
    relation: 'may decrease the excretion rate of',
  },
  {
    text: '{drug1} may increase the nephrotoxic activities of {drug2}.',
    relation: 'may increase the nephrotoxic activities of',
  },
  {
    text: 'The metabolism of {drug2} can be decreased when combined with {drug1}.',
    relation: 'can decrease the metabolism of',
  },
  {
    text: 'The serum concentration of {drug2} can be increased when it is combined with {drug1}.',
    relation: 'can increase the serum concentration of',
  },
  {
    text: 'The therapeutic efficacy of {drug2} can be decreased when used in combination with {drug1}.',
    relation: 'can decrease the therapeutic efficacy of',
  },
  {
    text: 'The risk or severity of bleeding can be increased when {drug1} is combined with {drug2}.',
    relation: 'can increase the risk or severity of bleeding when combined with',
  },
];

export interface DemoOptions {
  count: number;
  seed: number;
  /** fraction of records holding two interactions (two sentences) */
  twoInteractions?: number;
}

export function generateDemoCorpus(opts: DemoOptions): Array<MedRecord<'ddi-triplets'>> {
  if (!Number.isInteger(opts.count) || opts.count < 1)
    throw new MedloraError(`demo corpus: count must be a positive integer, got ${opts.count}`);
  const rand = mulberry32(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const two = opts.twoInteractions ?? 0.2;
  const one = (): { sentence: string; t: Triplet } => {
    const tpl = pick(DEMO_TEMPLATES);
    const d1 = pick(DEMO_DRUGS);
    let d2 = pick(DEMO_DRUGS);
    while (d2 === d1) d2 = pick(DEMO_DRUGS);
    let s = tpl.text.replace('{drug1}', d1).replace('{drug2}', d2);
    s = s[0]!.toUpperCase() + s.slice(1); // sentence case, as in DrugBank ("Warfarin may ...")
    return { sentence: s, t: { head: d1, relation: tpl.relation, tail: d2 } };
  };
  const out: Array<MedRecord<'ddi-triplets'>> = [];
  const seen = new Set<string>();
  for (let i = 0; out.length < opts.count; i++) {
    if (i > opts.count * 50) throw new MedloraError(`demo corpus: could not generate ${opts.count} distinct sentences`);
    const parts = rand() < two ? [one(), one()] : [one()];
    const input = parts.map((p) => p.sentence).join(' ');
    if (seen.has(input)) continue;
    seen.add(input);
    out.push({
      id: `demo-${out.length + 1}`,
      task: 'ddi-triplets',
      input,
      gold: parts.map((p) => p.t),
      meta: { corpus: 'demo', doc: `demo-${out.length + 1}` },
    });
  }
  return out;
}

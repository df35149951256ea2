// The canonical instruction-data record (one JSON object per line) and the structured "gold" answer of each task.
// Importers produce these; tasks render gold into target text; evaluation parses model text back into the same shapes.

/** Every task medlora knows. */
export const TASK_NAMES = [
  'ddi-triplets', // <drug1, relation, drug2> lines (DrugBank sentences, DDI 2013)
  'chemicals', // bullet list of chemical mentions (medical NER recipe)
  'diseases', // bullet list of disease mentions (medical NER recipe)
  'influences', // "chemical | disease" lines: chemical-induced disease pairs (BC5CDR CID)
  'chemprot', // <chemical, CPR group, gene/protein> lines
  'drug-ae', // "drug | adverse effect" lines (ADE corpus)
  'ade-email', // {"drug_name": ..., "adverse_events": [...]} JSON (adverse-event emails)
  'qa', // free-form answer; scored by loss / perplexity
] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export interface Triplet {
  head: string;
  relation: string;
  tail: string;
}

export interface Pair {
  head: string;
  tail: string;
}

export interface AdeEmail {
  drug_name: string;
  adverse_events: string[];
}

/** The gold answer's shape for each task. */
export interface GoldByTask {
  'ddi-triplets': Triplet[];
  chemicals: string[];
  diseases: string[];
  influences: Pair[];
  chemprot: Triplet[];
  'drug-ae': Pair[];
  'ade-email': AdeEmail;
  qa: string;
}
export type Gold = GoldByTask[TaskName];

export interface MedRecord<T extends TaskName = TaskName> {
  id: string;
  task: T;
  /** the source text the model reads */
  input: string;
  gold: GoldByTask[T];
  /** overrides the task's fixed instruction (generic JSONL imports carry their own) */
  instruction?: string;
  /** provenance: source document (for grouped splits), corpus, entity offsets, ... */
  meta?: Record<string, unknown>;
}

// The task registry: each task's fixed instruction, how its gold answer is rendered into target text, and the
// relation / entity-type labels used by `data stats` and stratified splits. Parsers live in src/eval, keyed by name.
//
// RENDERED TARGET FORMATS (the contract with src/eval's parsers; exactly one item per line, no trailing newline):
//   ddi-triplets, chemprot   `<head, relation, tail>`          e.g. `<warfarin, may increase the anticoagulant activities of, aspirin>`
//   chemicals, diseases      `- name`                          (bullet list, as in the medical NER recipe)
//   influences, drug-ae      `head | tail`                     e.g. `cimetidine | impotence`
//   ade-email                compact JSON, keys in this order: {"drug_name":"Abilify","adverse_events":["nausea","vomiting"]}
//   qa                       the answer text unchanged
// An EMPTY answer renders as the single line `none` for every list task (ddi-triplets, chemprot, chemicals, diseases,
// influences, drug-ae), so the model always emits something parseable and "nothing found" is learned explicitly.
// Items keep gold order; exact duplicates are rendered once. Items must not contain a newline (checked on render).
import { MedloraError } from '../util/errors.js';
import { TASK_NAMES, type GoldByTask, type MedRecord, type Pair, type TaskName, type Triplet } from './schema.js';

/** The line that stands for "no items" in every list task. */
export const EMPTY_ANSWER = 'none';

/** The medical NER recipe's instructions, verbatim from ../shared/corpora/medical-ner-instruct (prompt's first paragraph). */
const NER_PREFIX = 'The following article contains technical terms including diseases, drugs and chemicals. ';
export const NER_INSTRUCTIONS = {
  chemicals: `${NER_PREFIX}Create a list only of the chemicals mentioned.`,
  diseases: `${NER_PREFIX}Create a list only of the diseases mentioned.`,
  influences: `${NER_PREFIX}Create a list only of the influences between the chemicals and diseases mentioned.`,
} as const;

export interface TaskSpec<T extends TaskName = TaskName> {
  name: T;
  /** the fixed instruction placed before the input (a record's own `instruction` overrides it) */
  instruction: string;
  /** gold -> target text (format documented at the top of this file) */
  render(gold: GoldByTask[T]): string;
  /** labels for stats / stratification: relation types for relation tasks, entity types for entity tasks */
  labels(gold: GoldByTask[T]): string[];
  /** check that a parsed JSON value has this task's gold shape; returns an error message or undefined */
  validate(gold: unknown): string | undefined;
}

function checkItem(task: string, s: string): string {
  if (/[\r\n]/.test(s)) throw new MedloraError(`task ${task}: an answer item may not contain a line break: ${JSON.stringify(s)}`);
  return s.trim();
}

function lines(items: string[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const it of items) if (!seen.has(it)) { seen.add(it); out.push(it); }
  return out.length === 0 ? EMPTY_ANSWER : out.join('\n');
}

const renderTriplets = (task: string) => (g: Triplet[]): string =>
  lines(g.map((t) => `<${checkItem(task, t.head)}, ${checkItem(task, t.relation)}, ${checkItem(task, t.tail)}>`));
const renderPairs = (task: string) => (g: Pair[]): string =>
  lines(g.map((p) => `${checkItem(task, p.head)} | ${checkItem(task, p.tail)}`));
const renderBullets = (task: string) => (g: string[]): string => lines(g.map((s) => `- ${checkItem(task, s)}`));

const isStr = (v: unknown): v is string => typeof v === 'string';
function validateArray(gold: unknown, item: (v: unknown) => string | undefined, what: string): string | undefined {
  if (!Array.isArray(gold)) return `gold must be an array of ${what}`;
  for (let i = 0; i < gold.length; i++) {
    const e = item(gold[i]);
    if (e) return `gold[${i}]: ${e}`;
  }
  return undefined;
}
const tripletItem = (v: unknown): string | undefined => {
  const o = v as Record<string, unknown> | null;
  if (!o || typeof o !== 'object') return 'expected {head, relation, tail}';
  for (const k of ['head', 'relation', 'tail']) if (!isStr(o[k]) || (o[k] as string).trim() === '') return `field "${k}" must be a non-empty string`;
  return undefined;
};
const pairItem = (v: unknown): string | undefined => {
  const o = v as Record<string, unknown> | null;
  if (!o || typeof o !== 'object') return 'expected {head, tail}';
  for (const k of ['head', 'tail']) if (!isStr(o[k]) || (o[k] as string).trim() === '') return `field "${k}" must be a non-empty string`;
  return undefined;
};
const strItem = (v: unknown): string | undefined => (isStr(v) && v.trim() !== '' ? undefined : 'expected a non-empty string');

export const TASKS: { [T in TaskName]: TaskSpec<T> } = {
  'ddi-triplets': {
    name: 'ddi-triplets',
    // the DrugBank recipe's fixed instruction (task brief, issue 5)
    instruction: 'Extract drug entities and inter-entity relationships from input and output them in the form of triplets <drug entity1, relationship, drug entity2>.',
    render: renderTriplets('ddi-triplets'),
    labels: (g) => g.map((t) => t.relation),
    validate: (g) => validateArray(g, tripletItem, '{head, relation, tail}'),
  },
  chemicals: {
    name: 'chemicals',
    instruction: NER_INSTRUCTIONS.chemicals,
    render: renderBullets('chemicals'),
    labels: (g) => g.map(() => 'chemical'),
    validate: (g) => validateArray(g, strItem, 'strings'),
  },
  diseases: {
    name: 'diseases',
    instruction: NER_INSTRUCTIONS.diseases,
    render: renderBullets('diseases'),
    labels: (g) => g.map(() => 'disease'),
    validate: (g) => validateArray(g, strItem, 'strings'),
  },
  influences: {
    name: 'influences',
    instruction: NER_INSTRUCTIONS.influences,
    render: renderPairs('influences'),
    labels: (g) => g.map(() => 'CID'),
    validate: (g) => validateArray(g, pairItem, '{head, tail}'),
  },
  chemprot: {
    name: 'chemprot',
    instruction: 'Extract the chemical-protein relations from the input and output them one per line as triplets <chemical, CPR group, gene/protein>, where the CPR group is one of CPR:3 (upregulator/activator), CPR:4 (downregulator/inhibitor), CPR:5 (agonist), CPR:6 (antagonist), CPR:9 (substrate/product).',
    render: renderTriplets('chemprot'),
    labels: (g) => g.map((t) => t.relation),
    validate: (g) => validateArray(g, tripletItem, '{head, relation, tail}'),
  },
  'drug-ae': {
    name: 'drug-ae',
    instruction: 'Extract every drug and the adverse effect it caused from the input and output them one per line as "drug | adverse effect". Output "none" if the input reports no adverse drug effect.',
    render: renderPairs('drug-ae'),
    labels: (g) => g.map(() => 'ADE'),
    validate: (g) => validateArray(g, pairItem, '{head, tail}'),
  },
  'ade-email': {
    name: 'ade-email',
    // the upstream recipe's prompt-template.txt is the GENERATION prompt for the emails; this extraction instruction
    // names the same two entities ("drug_name" and "adverse_events") and the same JSON shape.
    instruction: 'Extract the entities "drug_name" and "adverse_events" from the following adverse event report and output them as JSON: {"drug_name": "...", "adverse_events": ["...", ...]}.',
    render: (g) => JSON.stringify({ drug_name: checkItem('ade-email', g.drug_name), adverse_events: g.adverse_events.map((s) => checkItem('ade-email', s)) }),
    labels: (g) => g.adverse_events.map(() => 'adverse_event'),
    validate: (g) => {
      const o = g as Record<string, unknown> | null;
      if (!o || typeof o !== 'object' || Array.isArray(o)) return 'gold must be an object {drug_name, adverse_events}';
      if (!isStr(o.drug_name)) return 'field "drug_name" must be a string';
      return validateArray(o.adverse_events, strItem, 'strings')?.replace(/^gold/, 'gold.adverse_events');
    },
  },
  qa: {
    name: 'qa',
    instruction: 'Answer the following question about medications accurately and concisely.',
    render: (g) => g,
    labels: () => [],
    validate: (g) => (isStr(g) ? undefined : 'gold must be a string (the answer)'),
  },
};

export function isTaskName(s: string): s is TaskName {
  return (TASK_NAMES as readonly string[]).includes(s);
}

export function getTask(name: string): TaskSpec {
  if (!isTaskName(name)) throw new MedloraError(`unknown task "${name}" (known: ${TASK_NAMES.join(', ')})`);
  return TASKS[name] as unknown as TaskSpec;
}

/** Target text of a record (its gold rendered by its task). */
export function renderTarget(r: MedRecord): string {
  return (TASKS[r.task] as unknown as TaskSpec).render(r.gold);
}

/** Instruction of a record: its own, else its task's fixed one. */
export function instructionOf(r: MedRecord): string {
  return r.instruction ?? TASKS[r.task].instruction;
}

/** Labels (relation / entity types) of a record, for stats and stratification. */
export function labelsOf(r: MedRecord): string[] {
  return (TASKS[r.task] as unknown as TaskSpec).labels(r.gold);
}

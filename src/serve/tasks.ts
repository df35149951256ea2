// What `GET /v1/tasks` publishes for each structured task: its fixed instruction (src/data/tasks.ts), the JSON Schema
// (draft 2020-12 subset) of the structured "result" a request gets back, and the roles its entities carry
// (src/eval/extract.ts entitiesOf). The schemas describe the shapes of src/data/schema.ts GoldByTask.
import { TASKS } from '../data/tasks.js';
import { STRUCTURED_TASKS, type StructuredTask } from '../eval/parse.js';

export type JsonSchema = Record<string, unknown>;

const str: JsonSchema = { type: 'string' };
const tripletSchema = (head: string, rel: string, tail: string): JsonSchema => ({
  type: 'array',
  items: {
    type: 'object', required: ['head', 'relation', 'tail'], additionalProperties: false,
    properties: { head: { ...str, description: head }, relation: { ...str, description: rel }, tail: { ...str, description: tail } },
  },
});
const pairSchema = (head: string, tail: string): JsonSchema => ({
  type: 'array',
  items: {
    type: 'object', required: ['head', 'tail'], additionalProperties: false,
    properties: { head: { ...str, description: head }, tail: { ...str, description: tail } },
  },
});
const listSchema = (what: string): JsonSchema => ({ type: 'array', items: { ...str, description: what } });

/** The structured result's JSON Schema per task. */
export const RESULT_SCHEMAS: { [K in StructuredTask]: JsonSchema } = {
  'ddi-triplets': tripletSchema('drug', 'interaction (free text)', 'drug'),
  chemprot: tripletSchema('chemical', 'CPR group, e.g. CPR:4', 'gene / protein'),
  chemicals: listSchema('chemical mention'),
  diseases: listSchema('disease mention'),
  influences: pairSchema('chemical', 'disease it induces'),
  'drug-ae': pairSchema('drug', 'adverse effect'),
  'ade-email': {
    type: 'object', required: ['drug_name', 'adverse_events'], additionalProperties: false,
    properties: { drug_name: str, adverse_events: listSchema('adverse event') },
  },
};

/** Entity roles per task, as src/eval/extract.ts entitiesOf names them. */
export const ENTITY_ROLES: { [K in StructuredTask]: string[] } = {
  'ddi-triplets': ['drug'], chemprot: ['chemical', 'gene'], chemicals: ['chemical'], diseases: ['disease'],
  influences: ['chemical', 'disease'], 'drug-ae': ['drug', 'adverse_effect'], 'ade-email': ['drug_name', 'adverse_event'],
};

export interface TaskInfo {
  name: StructuredTask;
  instruction: string;
  output_schema: JsonSchema;
  entity_roles: string[];
}

/** The published description of the given tasks (default: every structured task). */
export function taskInfos(tasks: readonly StructuredTask[] = STRUCTURED_TASKS): TaskInfo[] {
  return tasks.map((name) => ({ name, instruction: TASKS[name].instruction, output_schema: RESULT_SCHEMAS[name], entity_roles: ENTITY_ROLES[name] }));
}

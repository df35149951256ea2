// What `GET /v1/tasks` publishes for each structured task: its fixed instruction, the JSON Schema (draft 2020-12
// subset) of the structured "result" a request gets back, and the roles its entities carry. All of it comes from the
// task's module in the registry (src/data/tasks), built-in or user-defined.
import { getStructuredTask, structuredTaskNames, type JsonSchema } from '../data/tasks/index.js';

export type { JsonSchema } from '../data/tasks/index.js';

/** The structured result's JSON Schema of a task. */
export const RESULT_SCHEMAS: Readonly<Record<string, JsonSchema>> = new Proxy(
  {},
  {
    get: (_t, name) => (typeof name === 'string' ? getStructuredTask(name).resultSchema : undefined),
  },
);

/** Entity roles of a task, as src/infer/extract.ts entitiesOf names them. */
export const ENTITY_ROLES: Readonly<Record<string, string[]>> = new Proxy(
  {},
  {
    get: (_t, name) => (typeof name === 'string' ? getStructuredTask(name).entityRoles : undefined),
  },
);

export interface TaskInfo {
  name: string;
  instruction: string;
  output_schema: JsonSchema;
  entity_roles: string[];
}

/** The published description of the given tasks (default: every structured task, user-defined ones included). */
export function taskInfos(tasks: readonly string[] = structuredTaskNames()): TaskInfo[] {
  return tasks.map((name) => {
    const t = getStructuredTask(name);
    return { name, instruction: t.instruction, output_schema: t.resultSchema, entity_roles: t.entityRoles };
  });
}

// Task lookups for records, over the task registry (src/data/tasks/: one module per task, plus user-defined schema
// tasks). The formats themselves live in those modules; this file keeps the record-level helpers and the built-in
// table that older callers import.
import type { GoldByTask, MedRecord, TaskName } from './schema.js';
import { BUILTIN_TASKS, getTask, type Task } from './tasks/index.js';

export { EMPTY_ANSWER, NER_INSTRUCTIONS, getTask, isTaskName, type Task } from './tasks/index.js';

/** A built-in task with its gold type. */
export type TaskSpec<T extends TaskName = TaskName> = Task<GoldByTask[T]>;

/** The built-in tasks by name. */
export const TASKS = Object.fromEntries(BUILTIN_TASKS.map((t) => [t.name, t])) as {
  [T in TaskName]: TaskSpec<T>;
} & Record<string, Task<any>>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Target text of a record (its gold rendered by its task). */
export function renderTarget(r: MedRecord): string {
  return getTask(r.task).render(r.gold);
}

/** Instruction of a record: its own, else its task's fixed one. */
export function instructionOf(r: MedRecord): string {
  return r.instruction ?? getTask(r.task).instruction;
}

/** Labels (relation / entity types, JSON paths) of a record, for stats and stratification. */
export function labelsOf(r: MedRecord): string[] {
  return getTask(r.task).labels(r.gold);
}

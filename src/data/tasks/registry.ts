// The task registry: every task by name — the built-in modules (one per task) and user-defined schema tasks
// (registered from a config `task:` section or a --task-file). Everything else (data, generate, eval, serve) asks it.
import { readFileSync } from 'node:fs';
import { MedloraError } from '../../util/errors.js';
import type { Task, TaskSpecJson } from './types.js';
import { ddiTriplets } from './ddi-triplets.js';
import { chemicals } from './chemicals.js';
import { diseases } from './diseases.js';
import { influences } from './influences.js';
import { chemprot } from './chemprot.js';
import { drugAe } from './drug-ae.js';
import { adeEmail } from './ade-email.js';
import { qa } from './qa.js';
import { schemaTask } from './schema-task.js';

/** The built-in tasks, in the order of src/data/schema.ts TASK_NAMES. */
export const BUILTIN_TASKS: readonly Task[] = [
  ddiTriplets,
  chemicals,
  diseases,
  influences,
  chemprot,
  drugAe,
  adeEmail,
  qa,
] as unknown as Task[];

const registry = new Map<string, Task>(BUILTIN_TASKS.map((t) => [t.name, t]));

/** Add a user-defined task. Registering the same definition again is a no-op; a different one under a taken name is an error. */
export function registerTask(task: Task): Task {
  const old = registry.get(task.name);
  if (old) {
    if (JSON.stringify(old.spec()) === JSON.stringify(task.spec())) return old;
    throw new MedloraError(
      `task "${task.name}" is already defined${old.spec().kind === 'builtin' ? ' (a built-in task)' : ' with a different schema or instruction'}`,
    );
  }
  registry.set(task.name, task);
  return task;
}

export function isTaskName(name: string): boolean {
  return registry.has(name);
}

/** Every known task name (built-ins first). */
export function taskNames(): string[] {
  return [...registry.keys()];
}

/** The tasks with a structured answer (all but free-text qa). */
export function structuredTaskNames(): string[] {
  return [...registry.values()].filter((t) => t.structured).map((t) => t.name);
}

export function getTask(name: string): Task {
  const t = registry.get(name);
  if (!t)
    throw new MedloraError(
      `unknown task "${name}" (known: ${taskNames().join(', ')}; a task of your own is defined with a JSON Schema: a task file or a config "task:" section)`,
    );
  return t;
}

/** A structured task, or an error naming `where` (qa is free text: scored by loss). */
export function getStructuredTask(name: string, where = 'task'): Task {
  const t = registry.get(name);
  if (!t || !t.structured) {
    throw new MedloraError(
      `${where}: "${name}" is not a structured extraction task (expected one of ${structuredTaskNames().join(', ')}; qa is free text and is scored by medlora loss)`,
    );
  }
  return t;
}

/** The JSON that rebuilds a task (for the training contract stored beside adapters). */
export function taskSpec(task: Task | string): TaskSpecJson {
  return (typeof task === 'string' ? getTask(task) : task).spec();
}

/** Rebuild (and register) a task from its spec. */
export function taskFromSpec(spec: unknown, where = 'task spec'): Task {
  const s = spec as Partial<TaskSpecJson> | null;
  if (!s || typeof s !== 'object') throw new MedloraError(`${where}: expected an object`);
  if (s.kind === 'builtin') return getTask(String(s.name));
  if (s.kind === 'schema') {
    const { kind: _k, ...def } = s as TaskSpecJson & { kind: 'schema' };
    return registerTask(schemaTask(def, where));
  }
  throw new MedloraError(`${where}: "kind" must be "builtin" or "schema"`);
}

/** Define (and register) a task from {name, instruction, schema}. */
export function defineTask(def: unknown, where = 'task'): Task {
  return registerTask(schemaTask(def, where));
}

/** Read a task file ({name, instruction, schema} as JSON) and register its task. */
export function loadTaskFile(path: string): Task {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MedloraError(`cannot read task file ${path}: ${(e as Error).message}`);
  }
  let def: unknown;
  try {
    def = JSON.parse(text);
  } catch (e) {
    throw new MedloraError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return defineTask(def, path);
}

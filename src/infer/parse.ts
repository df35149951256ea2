// Model text back to a task's structured answer: each task module owns its tolerant parser (src/data/tasks/); this
// file is the inference-side entry point over the task registry (extract, serve and eval's scoring use it).
import type { GoldByTask, TaskName } from '../data/schema.js';
import { getStructuredTask, getTask, structuredTaskNames, validate, type ParseResult } from '../data/tasks/index.js';
import { MedloraError } from '../util/errors.js';

export type { ParseResult } from '../data/tasks/index.js';
export {
  EMPTY_ANSWER,
  cleanOutput,
  parseAdeEmail,
  parseBullets,
  parsePairs,
  parseTriplets,
  stripBullet,
} from '../data/tasks/index.js';

/** A task with a structured answer: a built-in one (everything but free-text qa) or a user-defined schema task. */
export type StructuredTask = string;

/** The built-in structured tasks (user-defined ones: structuredTaskNames() in src/data/tasks). */
export const STRUCTURED_TASKS: readonly Exclude<TaskName, 'qa'>[] = structuredTaskNames().filter(
  (t) => getTask(t).spec().kind === 'builtin',
) as Exclude<TaskName, 'qa'>[];

type GoldOf<T extends string> = T extends keyof GoldByTask ? GoldByTask[T] : unknown;

/** Parse raw model text for a task. */
export function parseOutput<T extends string>(task: T, text: string): ParseResult<GoldOf<T>> {
  return getStructuredTask(task).parse(text) as ParseResult<GoldOf<T>>;
}

/**
 * Validate an already structured prediction ({"pred": ...} in a predictions file) against the task's gold shape.
 * `where` names the file and line for the error.
 */
export function validateStructured<T extends string>(task: T, value: unknown, where: string): ParseResult<GoldOf<T>> {
  const t = getStructuredTask(task);
  // predictions are checked against the task's result schema (empty strings are a prediction's right; gold is stricter)
  const errs = validate(t.resultSchema, value);
  if (errs.length) {
    throw new MedloraError(
      `${where}: "pred" for task ${task} does not match its answer schema: ${errs
        .slice(0, 3)
        .map((e) => `${e.path}: ${e.message}`)
        .join('; ')}`,
    );
  }
  return { items: structuredClone(value) as GoldOf<T>, unparsed: [] };
}

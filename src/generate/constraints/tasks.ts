// A task's decoding constraint, compiled from the answer grammar its module provides (src/data/tasks): line-list
// formats become a FormatAutomaton (format.ts), JSON-schema grammars a JsonAutomaton (json.ts).
import {
  getStructuredTask,
  schemaNode,
  type FormatBounds,
  type Grammar,
  type JsonSchema,
  type ListFormat,
} from '../../data/tasks/index.js';
import { MedloraError } from '../../util/errors.js';
import { FormatAutomaton } from './format.js';
import { JsonAutomaton } from './json.js';

export { CHEMPROT_GROUPS, DEFAULT_BOUNDS, type FormatBounds } from '../../data/tasks/index.js';

/** The grammar of a structured task. */
export function taskGrammar(task: string, bounds: Partial<FormatBounds> = {}): Grammar {
  const g = getStructuredTask(task).grammar(bounds);
  if (!g) throw new MedloraError(`task ${task} has no answer grammar`);
  return g;
}

/** The list format of a line-list task (an error for JSON tasks). */
export function taskFormat(task: string, bounds: Partial<FormatBounds> = {}): ListFormat {
  const g = taskGrammar(task, bounds);
  if (g.kind !== 'list') throw new MedloraError(`task ${task} answers in JSON, not a line list`);
  return g.format;
}

/** The byte automaton of a grammar. */
export function grammarAutomaton(g: Grammar): FormatAutomaton | JsonAutomaton {
  return g.kind === 'list'
    ? new FormatAutomaton(g.format)
    : new JsonAutomaton(schemaNode(g.schema), { nonBlankStrings: g.nonBlankStrings ?? false });
}

/** The byte automaton of a task's answer format. */
export function taskAutomaton(task: string, bounds: Partial<FormatBounds> = {}): FormatAutomaton | JsonAutomaton {
  return grammarAutomaton(taskGrammar(task, bounds));
}

/** The byte automaton of canonical JSON valid against a schema. */
export function schemaAutomaton(schema: JsonSchema, opts: { nonBlankStrings?: boolean } = {}): JsonAutomaton {
  return new JsonAutomaton(schemaNode(schema), opts);
}

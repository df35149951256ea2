// The one place where library field names become flags: a library error names the setting it is about by its field
// (MedloraError.field / related, e.g. max_new_tokens) and the CLI, where it prints the error, names the command's flag
// for it instead (--max-new-tokens). The flag comes from the command's own option table (an option's `field`, else
// the option whose name is the field with - for _), so no list of names is kept here.
import type { CommandSpec } from './command.js';
import { MedloraError } from '../util/errors.js';

const squash = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
const camel = (s: string): string => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The flag of `spec` that sets library field `field`, or undefined when the command has none. Commands that take
 * config keys as flags (allowExtra: `medlora train --training.max_steps 5`) take every other field as `--field`.
 */
export function flagFor(spec: Pick<CommandSpec, 'options' | 'allowExtra'>, field: string): string | undefined {
  const opts = Object.entries(spec.options);
  const hit = opts.find(([, o]) => o.field === field) ?? opts.find(([k]) => squash(k) === squash(field));
  if (hit) return `--${hit[0]}`;
  return spec.allowExtra ? `--${field}` : undefined;
}

/**
 * `message` with each field name replaced by the command's flag for it: every whole-word occurrence, snake_case or
 * camelCase (a library message uses the field's name only where it means that setting: src/util/errors.ts).
 */
export function fieldsToFlags(
  spec: Pick<CommandSpec, 'options' | 'allowExtra'>,
  message: string,
  fields: readonly string[],
): string {
  let out = message;
  for (const field of fields) {
    const flag = flagFor(spec, field);
    if (!flag) continue;
    const names = [...new Set([field, camel(field)])].map(escape).join('|');
    // not inside a longer name, a key path or a file name (data.max_length, config.json stay as they are)
    out = out.replace(new RegExp(`(?<![\\w./-])(?:${names})(?![\\w-]|\\.\\w)`, 'g'), flag);
  }
  return out;
}

/** The message of an error as the CLI prints it: a MedloraError's fields named as `spec`'s flags. */
export function flagWorded(spec: Pick<CommandSpec, 'options' | 'allowExtra'>, e: Error): string {
  if (!(e instanceof MedloraError) || (e.field === undefined && e.related.length === 0)) return e.message;
  return fieldsToFlags(spec, e.message, [...(e.field !== undefined ? [e.field] : []), ...e.related]);
}

// Declarative command definitions: every `medlora <command>` is one CommandSpec. The parser, `--help` text and the
// README's CLI reference are all generated from these, so they cannot drift apart.
import { MedloraError } from '../util/errors.js';
import { suggestion } from '../util/suggest.js';

export type OptionType = 'string' | 'boolean' | 'number';

export interface OptionSpec {
  type: OptionType;
  description: string;
  short?: string;
  /** may be given several times (values collected into an array) */
  multiple?: boolean;
  default?: string | number | boolean;
  /** placeholder shown in help, e.g. DIR */
  value?: string;
  required?: boolean;
  /** the library field this option sets when its name differs (--prompt sets prompt_style): src/cli/flag-words.ts */
  field?: string;
}

export interface CommandSpec {
  /** full command path, e.g. "train" or "data import" */
  name: string;
  summary: string;
  /** positional arguments as shown in usage, e.g. "<format> PATH" */
  positionals?: string;
  options: Record<string, OptionSpec>;
  /** accept `--key value` pairs that are not declared (collected into `extra`), e.g. config overrides for train */
  allowExtra?: boolean;
  /** longer help shown under the usage line */
  details?: string;
  /** command lines shown under Examples: in --help (run by test/readme-commands.test.ts like the README's blocks) */
  examples?: string[];
  run(args: ParsedArgs): Promise<number | void> | number | void;
}

export interface ParsedArgs {
  options: Record<string, string | number | boolean | string[] | undefined>;
  positionals: string[];
  /** undeclared `--key value` pairs, in order (only when allowExtra) */
  extra: Array<[string, string]>;
}

function coerce(cmd: string, name: string, spec: OptionSpec, raw: string): string | number {
  if (spec.type === 'number') {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) {
      throw new MedloraError(`medlora ${cmd}: --${name} expects a number, got "${raw}"`);
    }
    return n;
  }
  return raw;
}

/** Parse argv (after the command words) against a spec. Errors name the command and the option. */
export function parseArgs(spec: CommandSpec, argv: string[]): ParsedArgs {
  const options: ParsedArgs['options'] = {};
  const positionals: string[] = [];
  const extra: Array<[string, string]> = [];
  const byShort = new Map<string, string>();
  for (const [k, o] of Object.entries(spec.options)) if (o.short) byShort.set(o.short, k);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      inline = eq >= 0 ? a.slice(eq + 1) : undefined;
    } else if (a.startsWith('-') && a.length === 2 && !/^-\d/.test(a)) {
      name = byShort.get(a.slice(1));
      if (!name) throw new MedloraError(`medlora ${spec.name}: unknown option ${a} (see medlora ${spec.name} --help)`);
    } else {
      positionals.push(a);
      continue;
    }
    const o = spec.options[name];
    if (!o) {
      if (name.startsWith('no-') && spec.options[name.slice(3)]?.type === 'boolean') {
        options[name.slice(3)] = false;
        continue;
      }
      if (spec.allowExtra) {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new MedloraError(`medlora ${spec.name}: --${name} needs a value`);
        extra.push([name, v]);
        continue;
      }
      throw new MedloraError(
        `medlora ${spec.name}: unknown option --${name}${suggestion(name, Object.keys(spec.options), (k) => `--${k}`)}`,
      );
    }
    if (o.type === 'boolean') {
      if (inline !== undefined && !/^(true|false|1|0)$/.test(inline)) {
        throw new MedloraError(`medlora ${spec.name}: --${name} is a switch; got "${inline}"`);
      }
      options[name] = inline === undefined ? true : inline === 'true' || inline === '1';
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined)
      throw new MedloraError(`medlora ${spec.name}: --${name} needs a value${o.value ? ` (${o.value})` : ''}`);
    const v = coerce(spec.name, name, o, raw);
    if (o.multiple) {
      const prev = (options[name] as string[] | undefined) ?? [];
      options[name] = [...prev, String(v)];
    } else {
      options[name] = v;
    }
  }
  for (const [k, o] of Object.entries(spec.options)) {
    if (options[k] === undefined && o.default !== undefined) options[k] = o.default;
    if (o.required && options[k] === undefined) {
      throw new MedloraError(
        `medlora ${spec.name}: --${k}${o.value ? ` ${o.value}` : ''} is required (${o.description})`,
      );
    }
  }
  return { options, positionals, extra };
}

export function usageLine(spec: CommandSpec): string {
  const req = Object.entries(spec.options)
    .filter(([, o]) => o.required)
    .map(([k, o]) => `--${k}${o.type === 'boolean' ? '' : ` ${o.value ?? k.toUpperCase()}`}`);
  return ['medlora', spec.name, spec.positionals ?? '', ...req, '[options]'].filter(Boolean).join(' ');
}

export function helpText(spec: CommandSpec): string {
  const lines = [`${usageLine(spec)}`, '', spec.summary];
  if (spec.details) lines.push('', spec.details);
  const opts = Object.entries(spec.options);
  if (opts.length) {
    lines.push('', 'Options:');
    const rows = opts.map(([k, o]) => {
      const flag = `${o.short ? `-${o.short}, ` : ''}--${k}${o.type === 'boolean' ? '' : ` ${o.value ?? k.toUpperCase()}`}`;
      const dflt = o.default !== undefined ? ` (default: ${o.default})` : '';
      const req = o.required ? ' (required)' : '';
      return [flag, `${o.description}${req}${dflt}`] as const;
    });
    const w = Math.min(34, Math.max(...rows.map((r) => r[0].length)) + 2);
    for (const [f, d] of rows) lines.push(`  ${f.padEnd(w)}${d}`);
  }
  if (spec.examples?.length) lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/** Typed accessors so command code reads cleanly. */
export function str(a: ParsedArgs, k: string): string | undefined {
  const v = a.options[k];
  return v === undefined ? undefined : String(v);
}
export function num(a: ParsedArgs, k: string): number | undefined {
  const v = a.options[k];
  return v === undefined ? undefined : Number(v);
}
export function bool(a: ParsedArgs, k: string): boolean {
  return a.options[k] === true;
}
export function list(a: ParsedArgs, k: string): string[] {
  const v = a.options[k];
  return v === undefined ? [] : Array.isArray(v) ? v : [String(v)];
}

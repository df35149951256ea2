// A user-defined task from {name, instruction, schema}: gold records carry the structured answer, the target text is
// its canonical JSON (json-schema.ts), decoding is constrained by the schema so the output always parses and
// validates, and scoring is field level: each leaf value is a unit typed by its JSON path (array items a multiset).
import { MedloraError } from '../../util/errors.js';
import type { Task } from './types.js';
import {
  canonicalJson,
  compileSchema,
  leafPaths,
  leaves,
  SchemaError,
  validate,
  type JsonSchema,
  type SchemaNode,
} from './json-schema.js';
import { cleanOutput } from './lines.js';

export interface SchemaTaskDef {
  name: string;
  instruction: string;
  schema: JsonSchema;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function emptyOf(n: SchemaNode): unknown {
  switch (n.t) {
    case 'object':
      return {};
    case 'array':
      return [];
    case 'anyOf':
      return n.alts.some((a) => a.t === 'null') ? null : emptyOf(n.alts[0]!);
    case 'string':
      return '';
    default:
      return null;
  }
}

/** Check a task definition (`where` names its file or config key in errors) and build the task. */
export function schemaTask(def: unknown, where = 'task'): Task<unknown> {
  const d = def as Partial<SchemaTaskDef> | null;
  if (!d || typeof d !== 'object' || Array.isArray(d))
    throw new MedloraError(`${where}: expected an object {name, instruction, schema}`);
  for (const k of Object.keys(d))
    if (!['name', 'instruction', 'schema', 'description'].includes(k))
      throw new MedloraError(`${where}: unknown key "${k}" (expected name, instruction, schema)`);
  if (typeof d.name !== 'string' || !NAME.test(d.name))
    throw new MedloraError(`${where}: "name" must be a task name (letters, digits, "-", "_", "."; 1-64 characters)`);
  if (typeof d.instruction !== 'string' || !d.instruction.trim())
    throw new MedloraError(`${where}: "instruction" must be a non-empty string`);
  let node: SchemaNode;
  try {
    node = compileSchema(d.schema);
  } catch (e) {
    if (e instanceof SchemaError) throw new MedloraError(`${where}: "schema": ${e.message}`);
    throw e;
  }
  const schema = d.schema as JsonSchema;
  const name = d.name,
    instruction = d.instruction;
  const paths = leafPaths(node);
  const stringPaths = paths.filter((p) => p.type === 'string').map((p) => p.path);
  const brackets = node.t === 'array' ? ['[', ']'] : node.t === 'object' ? ['{', '}'] : undefined;
  const errorsOf = (v: unknown): string[] => validate(node, v).map((e) => `${e.path}: ${e.message}`);
  return {
    name,
    instruction,
    structured: true,
    render: (g) => {
      // the empty placeholder (prompting on raw text: the prompt never depends on the gold) renders as plain JSON even
      // when the schema requires more
      if (JSON.stringify(g) === JSON.stringify(emptyOf(node))) return JSON.stringify(g);
      const errs = errorsOf(g);
      if (errs.length) throw new MedloraError(`task ${name}: gold does not match the schema: ${errs.join('; ')}`);
      return canonicalJson(node, g);
    },
    parse: (text) => {
      // the whole text as JSON, else the outermost {...} / [...] in it (prose or code fences around are ignored)
      const t = cleanOutput(text);
      let v: unknown;
      let ok = false;
      try {
        v = JSON.parse(t);
        ok = true;
      } catch {
        /* try the bracketed part */
      }
      if (!ok && brackets) {
        const a = t.indexOf(brackets[0]!),
          b = t.lastIndexOf(brackets[1]!);
        if (a >= 0 && b > a)
          try {
            v = JSON.parse(t.slice(a, b + 1));
            ok = true;
          } catch {
            /* unparsed */
          }
      }
      if (!ok) return { items: emptyOf(node), unparsed: t ? [t] : ['(empty output)'] };
      return { items: v, unparsed: errorsOf(v) };
    },
    grammar: () => ({ kind: 'json', schema }),
    resultSchema: schema,
    validate: (g) => {
      const e = errorsOf(g);
      return e.length ? e.join('; ') : undefined;
    },
    empty: () => emptyOf(node),
    labels: (g) => leaves(node, g).map((l) => l.path),
    isEmpty: (g) => leaves(node, g).length === 0,
    units: (v) =>
      leaves(node, v).map((l) =>
        typeof l.value === 'string'
          ? { type: l.path, names: [l.value], text: `${l.path}: ${l.value}` }
          : {
              type: l.path,
              names: [],
              literal: JSON.stringify(l.value),
              text: `${l.path}: ${JSON.stringify(l.value)}`,
            },
      ),
    symmetricRelations: [],
    entities: (v) => {
      const out: Array<{ role: string; text: string }> = [];
      for (const l of leaves(node, v))
        if (typeof l.value === 'string' && !out.some((e) => e.role === l.path && e.text === l.value))
          out.push({ role: l.path, text: l.value });
      return out;
    },
    entityRoles: stringPaths,
    spec: () => ({ kind: 'schema', name, instruction, schema }),
  };
}

// The JSON Schema subset medlora tasks accept (README "Tasks from a JSON Schema"), compiled into a small tree that
// validation, canonical rendering, scoring units and constrained decoding (src/generate/constraints/json.ts) share.
// Supported: object (properties, required, additionalProperties false), array (items, minItems, maxItems), string
// (enum, minLength, maxLength), integer and number (minimum, maximum), boolean, null, anyOf of these; annotations
// (title, description, $schema, $id, $comment, examples, default) are ignored. Anything else is an error naming the
// schema path and the keyword. Object schemas are closed: a property outside `properties` is invalid (the canonical
// rendering could not carry it).
// Canonical JSON (the target text of a schema task): compact (no whitespace), object keys in `properties` order,
// absent optional properties omitted, strings and numbers as JSON.stringify writes them (numbers without exponent).
import { MedloraError } from '../../util/errors.js';

export type JsonSchema = Record<string, unknown>;

export type SchemaNode =
  | { t: 'object'; props: Array<{ key: string; node: SchemaNode; required: boolean }> }
  | { t: 'array'; items: SchemaNode; minItems: number; maxItems?: number }
  | { t: 'string'; enum?: string[]; minLength: number; maxLength?: number }
  | { t: 'integer' | 'number'; minimum?: number; maximum?: number }
  | { t: 'boolean' }
  | { t: 'null' }
  | { t: 'anyOf'; alts: SchemaNode[] };

const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$comment', 'examples', 'default']);
const KEYWORDS: Record<string, string[]> = {
  object: ['properties', 'required', 'additionalProperties'],
  array: ['items', 'minItems', 'maxItems'],
  string: ['enum', 'minLength', 'maxLength'],
  integer: ['minimum', 'maximum'],
  number: ['minimum', 'maximum'],
  boolean: [],
  null: [],
};

/** An unsupported or malformed schema: names the schema path (JSON Pointer) and the keyword. */
export class SchemaError extends MedloraError {
  constructor(
    readonly schemaPath: string,
    readonly keyword: string,
    what: string,
  ) {
    super(`JSON Schema ${schemaPath || '#'}: ${keyword ? `"${keyword}" ` : ''}${what}`);
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const ptr = (path: string, k: string): string => `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
const nonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Check a schema against the supported subset and compile it; throws SchemaError naming the path and keyword. */
export function compileSchema(schema: unknown, path = '#'): SchemaNode {
  if (!isObj(schema)) throw new SchemaError(path, '', 'must be a JSON object (a schema)');
  if ('anyOf' in schema) {
    for (const k of Object.keys(schema))
      if (k !== 'anyOf' && !ANNOTATIONS.has(k))
        throw new SchemaError(path, k, 'is not supported beside anyOf (supported: anyOf alone, with annotations)');
    const alts = schema.anyOf;
    if (!Array.isArray(alts) || alts.length === 0)
      throw new SchemaError(path, 'anyOf', 'must be a non-empty array of schemas');
    return { t: 'anyOf', alts: alts.map((a, i) => compileSchema(a, ptr(ptr(path, 'anyOf'), String(i)))) };
  }
  const type = schema.type;
  if (type === undefined)
    throw new SchemaError(
      path,
      'type',
      'is required (one of object, array, string, integer, number, boolean, null; or use anyOf)',
    );
  if (typeof type !== 'string' || !(type in KEYWORDS)) {
    throw new SchemaError(
      path,
      'type',
      `${JSON.stringify(type)} is not supported (one of object, array, string, integer, number, boolean, null; a list of types is written as anyOf)`,
    );
  }
  for (const k of Object.keys(schema)) {
    if (k !== 'type' && !ANNOTATIONS.has(k) && !KEYWORDS[type]!.includes(k)) {
      throw new SchemaError(
        path,
        k,
        `is not supported for type ${type} (supported: ${KEYWORDS[type]!.join(', ') || 'no keywords'})`,
      );
    }
  }
  switch (type) {
    case 'object': {
      const props = schema.properties ?? {};
      if (!isObj(props)) throw new SchemaError(path, 'properties', 'must be an object of schemas');
      const req = schema.required ?? [];
      if (!Array.isArray(req) || !req.every((r) => typeof r === 'string'))
        throw new SchemaError(path, 'required', 'must be an array of property names');
      for (const r of req as string[])
        if (!(r in props)) throw new SchemaError(path, 'required', `names "${r}", which is not in properties`);
      if (schema.additionalProperties !== undefined && schema.additionalProperties !== false) {
        throw new SchemaError(path, 'additionalProperties', 'is only supported as false (task objects are closed)');
      }
      return {
        t: 'object',
        props: Object.entries(props).map(([key, s]) => ({
          key,
          node: compileSchema(s, ptr(ptr(path, 'properties'), key)),
          required: (req as string[]).includes(key),
        })),
      };
    }
    case 'array': {
      if (schema.items === undefined) throw new SchemaError(path, 'items', 'is required for arrays');
      const minItems = schema.minItems ?? 0;
      if (!nonNegInt(minItems)) throw new SchemaError(path, 'minItems', 'must be a non-negative integer');
      if (schema.maxItems !== undefined && (!nonNegInt(schema.maxItems) || schema.maxItems < minItems))
        throw new SchemaError(path, 'maxItems', 'must be an integer >= minItems');
      return {
        t: 'array',
        items: compileSchema(schema.items, ptr(path, 'items')),
        minItems,
        ...(schema.maxItems !== undefined ? { maxItems: schema.maxItems as number } : {}),
      };
    }
    case 'string': {
      const minLength = schema.minLength ?? 0;
      if (!nonNegInt(minLength)) throw new SchemaError(path, 'minLength', 'must be a non-negative integer');
      if (schema.maxLength !== undefined && (!nonNegInt(schema.maxLength) || schema.maxLength < minLength))
        throw new SchemaError(path, 'maxLength', 'must be an integer >= minLength');
      if (
        schema.enum !== undefined &&
        (!Array.isArray(schema.enum) || schema.enum.length === 0 || !schema.enum.every((e) => typeof e === 'string'))
      ) {
        throw new SchemaError(path, 'enum', 'must be a non-empty array of strings');
      }
      return {
        t: 'string',
        minLength,
        ...(schema.maxLength !== undefined ? { maxLength: schema.maxLength as number } : {}),
        ...(schema.enum ? { enum: [...new Set(schema.enum as string[])] } : {}),
      };
    }
    case 'integer':
    case 'number': {
      for (const k of ['minimum', 'maximum'] as const) {
        const v = schema[k];
        if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v)))
          throw new SchemaError(path, k, 'must be a finite number');
      }
      if (typeof schema.minimum === 'number' && typeof schema.maximum === 'number' && schema.minimum > schema.maximum)
        throw new SchemaError(path, 'maximum', 'must be >= minimum');
      return {
        t: type,
        ...(schema.minimum !== undefined ? { minimum: schema.minimum as number } : {}),
        ...(schema.maximum !== undefined ? { maximum: schema.maximum as number } : {}),
      };
    }
    default:
      return { t: type as 'boolean' | 'null' };
  }
}

export interface ValidationError {
  /** where in the value, e.g. $.drugs[0].dose */
  path: string;
  message: string;
}

const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

function validateNode(n: SchemaNode, v: unknown, path: string, out: ValidationError[]): void {
  const err = (message: string): void => {
    out.push({ path, message });
  };
  switch (n.t) {
    case 'object': {
      if (!isObj(v)) return err(`expected an object, got ${typeOf(v)}`);
      for (const p of n.props) {
        if (v[p.key] === undefined) {
          if (p.required) err(`missing required property "${p.key}"`);
          continue;
        }
        validateNode(p.node, v[p.key], `${path}.${p.key}`, out);
      }
      for (const k of Object.keys(v))
        if (!n.props.some((p) => p.key === k)) err(`property "${k}" is not in the schema's properties`);
      return;
    }
    case 'array': {
      if (!Array.isArray(v)) return err(`expected an array, got ${typeOf(v)}`);
      if (v.length < n.minItems) err(`expected at least ${n.minItems} items, got ${v.length}`);
      if (n.maxItems !== undefined && v.length > n.maxItems)
        err(`expected at most ${n.maxItems} items, got ${v.length}`);
      v.forEach((x, i) => validateNode(n.items, x, `${path}[${i}]`, out));
      return;
    }
    case 'string': {
      if (typeof v !== 'string') return err(`expected a string, got ${typeOf(v)}`);
      if (n.enum && !n.enum.includes(v)) return err(`${JSON.stringify(v)} is not one of ${JSON.stringify(n.enum)}`);
      const len = codePoints(v);
      if (len < n.minLength) err(`expected at least ${n.minLength} characters, got ${len}`);
      if (n.maxLength !== undefined && len > n.maxLength) err(`expected at most ${n.maxLength} characters, got ${len}`);
      return;
    }
    case 'integer':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v))
        return err(`expected ${n.t === 'integer' ? 'an integer' : 'a number'}, got ${typeOf(v)}`);
      if (n.t === 'integer' && !Number.isInteger(v)) return err(`expected an integer, got ${v}`);
      if (n.minimum !== undefined && v < n.minimum) err(`${v} is below the minimum ${n.minimum}`);
      if (n.maximum !== undefined && v > n.maximum) err(`${v} is above the maximum ${n.maximum}`);
      return;
    }
    case 'boolean':
      if (typeof v !== 'boolean') err(`expected a boolean, got ${typeOf(v)}`);
      return;
    case 'null':
      if (v !== null) err(`expected null, got ${typeOf(v)}`);
      return;
    case 'anyOf': {
      if (firstMatching(n, v) === undefined) err(`matches none of the ${n.alts.length} anyOf alternatives`);
    }
  }
}

function typeOf(v: unknown): string {
  return v === null
    ? 'null'
    : Array.isArray(v)
      ? 'an array'
      : typeof v === 'object'
        ? 'an object'
        : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

function firstMatching(n: { alts: SchemaNode[] }, v: unknown): SchemaNode | undefined {
  return n.alts.find((a) => {
    const e: ValidationError[] = [];
    validateNode(a, v, '$', e);
    return e.length === 0;
  });
}

const compiled = new WeakMap<object, SchemaNode>();
function nodeOf(schema: JsonSchema | SchemaNode): SchemaNode {
  if ('t' in schema && typeof schema.t === 'string' && !('type' in schema)) return schema as SchemaNode;
  let n = compiled.get(schema);
  if (!n) {
    n = compileSchema(schema);
    compiled.set(schema, n);
  }
  return n;
}

/** Validate a value against a (supported) schema: every error with its JSON path; [] when valid. */
export function validate(schema: JsonSchema | SchemaNode, value: unknown): ValidationError[] {
  const out: ValidationError[] = [];
  validateNode(nodeOf(schema), value, '$', out);
  return out;
}

/** The canonical JSON text of a value valid against the schema (throws MedloraError naming the path otherwise). */
export function canonicalJson(schema: JsonSchema | SchemaNode, value: unknown): string {
  const n = nodeOf(schema);
  const errs = validate(n, value);
  if (errs.length)
    throw new MedloraError(`value does not match the schema: ${errs.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
  return canon(n, value);
}

function canon(n: SchemaNode, v: unknown): string {
  switch (n.t) {
    case 'object': {
      const o = v as Record<string, unknown>;
      return `{${n.props
        .filter((p) => o[p.key] !== undefined)
        .map((p) => `${JSON.stringify(p.key)}:${canon(p.node, o[p.key])}`)
        .join(',')}}`;
    }
    case 'array':
      return `[${(v as unknown[]).map((x) => canon(n.items, x)).join(',')}]`;
    case 'anyOf':
      return canon(firstMatching(n, v)!, v);
    case 'integer':
    case 'number':
      return plainNumber(v as number);
    default:
      return JSON.stringify(v);
  }
}

/** A finite number as JSON without an exponent (JSON.stringify writes 1e21 and 1e-7 with one). */
export function plainNumber(x: number): string {
  const s = JSON.stringify(x === 0 ? 0 : x);
  if (!/e/i.test(s)) return s;
  if (Math.abs(x) >= 1) return BigInt(Math.round(x)).toString();
  return x.toFixed(20).replace(/0+$/, '');
}

/** One scorable leaf of a value: its JSON path with array indices dropped (e.g. drugs[].dose) and the value. */
export interface Leaf {
  path: string;
  value: string | number | boolean;
}

/**
 * The leaf values of a value (strings, numbers, booleans) typed by their JSON path, array items flattened (scored as
 * a multiset). null, empty strings and absent properties are "no value" and yield no leaf. Parts of the value that
 * do not fit the schema are skipped (a prediction is scored on what it got right).
 */
export function leaves(schema: JsonSchema | SchemaNode, value: unknown): Leaf[] {
  const out: Leaf[] = [];
  const walk = (n: SchemaNode, v: unknown, path: string): void => {
    switch (n.t) {
      case 'object':
        if (isObj(v))
          for (const p of n.props)
            if (v[p.key] !== undefined) walk(p.node, v[p.key], path ? `${path}.${p.key}` : p.key);
        return;
      case 'array':
        if (Array.isArray(v)) for (const x of v) walk(n.items, x, `${path}[]`);
        return;
      case 'anyOf': {
        const a =
          firstMatching(n, v) ??
          n.alts.find((x) => x.t === (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v));
        if (a) walk(a, v, path);
        return;
      }
      case 'string':
        if (typeof v === 'string' && v !== '') out.push({ path: path || '$', value: v });
        return;
      case 'integer':
      case 'number':
        if (typeof v === 'number' && Number.isFinite(v)) out.push({ path: path || '$', value: v });
        return;
      case 'boolean':
        if (typeof v === 'boolean') out.push({ path: path || '$', value: v });
        return;
      case 'null':
        return;
    }
  };
  walk(nodeOf(schema), value, '');
  return out;
}

/** Every leaf path a schema can produce, with the leaf's type (for published entity roles and labels). */
export function leafPaths(schema: JsonSchema | SchemaNode): Array<{ path: string; type: string }> {
  const out: Array<{ path: string; type: string }> = [];
  const walk = (n: SchemaNode, path: string): void => {
    switch (n.t) {
      case 'object':
        for (const p of n.props) walk(p.node, path ? `${path}.${p.key}` : p.key);
        return;
      case 'array':
        walk(n.items, `${path}[]`);
        return;
      case 'anyOf':
        for (const a of n.alts) walk(a, path);
        return;
      case 'null':
        return;
      default:
        if (!out.some((o) => o.path === (path || '$') && o.type === n.t)) out.push({ path: path || '$', type: n.t });
    }
  };
  walk(nodeOf(schema), '');
  return out;
}

/** The schema node (compiled once per schema object). */
export function schemaNode(schema: JsonSchema): SchemaNode {
  return nodeOf(schema);
}

// Entry point for generation code: a task's (or a JSON Schema's) token constraint for a tokenizer, cached per
// (grammar, vocabulary) so masks computed once are reused across decodes, and applying a mask to logits. The
// vocabulary bytes and trie are built once per tokenizer. Unconstrained decoding simply skips all of this.
import type { TextTokenizer } from '../../tokenize/types.js';
import {
  compileSchema,
  SchemaError,
  type FormatBounds,
  type Grammar,
  type JsonSchema,
} from '../../data/tasks/index.js';
import { ConstraintVocab, TokenConstraint, type Constraint, type MaskResult } from './mask.js';
import { FormatAutomaton } from './format.js';
import { SchemaConstraint } from './schema.js';
import { JsonAutomaton } from './json.js';
import { grammarAutomaton, taskGrammar } from './tasks.js';

export { ConstrainedSession, ConstraintVocab, TokenConstraint, type Constraint, type MaskResult } from './mask.js';
export { SchemaConstraint } from './schema.js';
export { JsonAutomaton };
export {
  DEFAULT_BOUNDS,
  type FormatBounds,
  grammarAutomaton,
  schemaAutomaton,
  taskAutomaton,
  taskFormat,
  taskGrammar,
} from './tasks.js';
export { validate, SchemaError, type ValidationError } from '../../data/tasks/index.js';

const vocabs = new WeakMap<TextTokenizer, ConstraintVocab>();
const constraints = new WeakMap<ConstraintVocab, Map<string, Constraint>>();

/** The vocabulary view of a tokenizer, built once (about a second for a 50k vocabulary). */
export function constraintVocab(tok: TextTokenizer): ConstraintVocab {
  let v = vocabs.get(tok);
  if (!v) {
    v = new ConstraintVocab(tok);
    vocabs.set(tok, v);
  }
  return v;
}

/** The token constraint of an automaton over a vocabulary (uncached; tests and benchmarks). */
export function automatonConstraint(vocab: ConstraintVocab, a: FormatAutomaton | JsonAutomaton): Constraint {
  return a instanceof FormatAutomaton ? new TokenConstraint(vocab, a) : new SchemaConstraint(vocab, a);
}

/** The constraint of a grammar for a tokenizer, cached per (grammar, vocabulary). */
export function grammarConstraint(g: Grammar, tok: TextTokenizer): Constraint {
  const vocab = constraintVocab(tok);
  let m = constraints.get(vocab);
  if (!m) {
    m = new Map();
    constraints.set(vocab, m);
  }
  const key = JSON.stringify(g);
  let c = m.get(key);
  if (!c) {
    c = automatonConstraint(vocab, grammarAutomaton(g));
    m.set(key, c);
  }
  return c;
}

/** The token constraint that makes `task`'s output always parse (and, for schema tasks, validate). */
export function taskConstraint(task: string, tok: TextTokenizer, bounds: Partial<FormatBounds> = {}): Constraint {
  return grammarConstraint(taskGrammar(task, bounds), tok);
}

/**
 * The token constraint for canonical compact JSON valid against `schema` (the subset of src/data/tasks/json-schema.ts;
 * an unsupported keyword throws SchemaError naming the schema path and the keyword), e.g. for an OpenAI-style
 * `response_format: {type: "json_schema"}`. Cached per (schema, tokenizer).
 */
export function schemaConstraint(schema: JsonSchema, tok: TextTokenizer): Constraint {
  compileSchema(schema); // throws SchemaError before anything is built
  return grammarConstraint({ kind: 'json', schema }, tok);
}
void SchemaError;

/** Nesting bound of `anyObjectConstraint`: objects and arrays nest at most this deep, the top object included. */
export const ANY_OBJECT_MAX_DEPTH = 8;

/**
 * The token constraint for any JSON object (OpenAI's `response_format: {type: "json_object"}`): compact JSON, keys any
 * strings, values any JSON values, objects and arrays nested at most `maxDepth` deep (the top object included),
 * numbers without exponent. The text always parses with JSON.parse to an object. Cached per (depth, tokenizer).
 */
export function anyObjectConstraint(tok: TextTokenizer, maxDepth = ANY_OBJECT_MAX_DEPTH): Constraint {
  const vocab = constraintVocab(tok);
  let m = constraints.get(vocab);
  if (!m) {
    m = new Map();
    constraints.set(vocab, m);
  }
  const key = `any-object:${maxDepth}`;
  let c = m.get(key);
  if (!c) {
    c = new SchemaConstraint(vocab, JsonAutomaton.anyObject(maxDepth));
    m.set(key, c);
  }
  return c;
}

/** Set the logits of disallowed tokens to -Infinity in place (EOS per `m.eos`). Works for any float array. */
export function applyMask(logits: Float32Array | Float64Array, m: MaskResult, eosId: number): void {
  const eosLogit = eosId < logits.length ? logits[eosId]! : -Infinity;
  const n = Math.min(logits.length, m.allowed.length);
  for (let i = 0; i < n; i++) if (!m.allowed[i]) logits[i] = -Infinity;
  // ids past the tokenizer's vocabulary (padded embedding rows) are never allowed
  for (let i = n; i < logits.length; i++) logits[i] = -Infinity;
  if (eosId < logits.length) logits[eosId] = m.eos ? eosLogit : -Infinity;
}

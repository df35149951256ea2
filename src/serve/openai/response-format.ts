// response_format -> a token constraint from medlora's constrained decoder (the JSON-schema engine of
// src/generate/constraints: schemaConstraint), so a json_schema reply always parses and validates. The one place the
// OpenAI layer touches the schema engine. The engine supports a subset of JSON Schema (src/data/tasks/json-schema.ts);
// any other keyword is a 400 naming its schema path, never ignored. json_object is the engine's "any JSON object"
// grammar (anyObjectConstraint: nesting at most ANY_OBJECT_MAX_DEPTH deep), so that reply always parses to an object.
import type { TextTokenizer } from '../../tokenize/types.js';
import type { ConstraintFn } from '../../generate/generate.js';
import { sessionsConstraint } from '../../generate/constrain.js';
import {
  ANY_OBJECT_MAX_DEPTH,
  anyObjectConstraint,
  ConstrainedSession,
  SchemaError,
  schemaConstraint,
  validate,
} from '../../generate/constraints/index.js';
import { HttpError } from '../http-error.js';
import type { ResponseFormat } from './request.js';

export interface FormatConstraint {
  /** the per-sequence constraint, one token budget per sequence (sequence index = job index) */
  constraint(budgets: number[]): ConstraintFn;
  /** problems of a finished reply against the format (empty = valid) */
  check(text: string): string[];
}

const FIELD = 'response_format.json_schema.schema';

/** The constraint of a response format, or null for plain text; throws a 400 naming what is not supported. */
export function formatConstraint(rf: ResponseFormat, tok: TextTokenizer): FormatConstraint | null {
  if (rf.type === 'text') return null;
  if (rf.type === 'json_object') {
    const c = anyObjectConstraint(tok);
    return {
      constraint: (budgets) => sessionsConstraint(budgets.map((b) => new ConstrainedSession(c, b))),
      check: (text) => {
        let v: unknown;
        try {
          v = JSON.parse(text);
        } catch (e) {
          return [`not JSON: ${(e as Error).message}`];
        }
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return ['not a JSON object'];
        return depth(v) > ANY_OBJECT_MAX_DEPTH ? [`nested deeper than ${ANY_OBJECT_MAX_DEPTH}`] : [];
      },
    };
  }
  const schema = rf.schema;
  let c: ReturnType<typeof schemaConstraint>;
  try {
    c = schemaConstraint(schema, tok);
  } catch (e) {
    if (e instanceof SchemaError) throw new HttpError(400, `${FIELD}: ${e.message}`, FIELD, {}, 'unsupported_schema');
    throw e;
  }
  return {
    constraint: (budgets) => sessionsConstraint(budgets.map((b) => new ConstrainedSession(c, b))),
    check: (text) => {
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        return [`not JSON: ${(e as Error).message}`];
      }
      return validate(schema, v).map((x) => `${x.path}: ${x.message}`);
    },
  };
}

/** Levels of nested objects/arrays in a JSON value (a scalar: 0). */
function depth(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let d = 0;
  for (const x of Object.values(v)) d = Math.max(d, depth(x));
  return d + 1;
}

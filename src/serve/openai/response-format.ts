// response_format -> a token constraint from medlora's constrained decoder, so the reply always parses (json_object)
// and validates (json_schema). The one place the OpenAI layer touches the schema engine.
import type { TextTokenizer } from '../../tokenize/types.js';
import type { ConstraintFn } from '../../generate/generate.js';
import { HttpError } from '../http-error.js';
import type { ResponseFormat } from './request.js';

export interface FormatConstraint {
  /** the per-sequence constraint for `count` sequences with `maxTokens` each (sequence index = job index) */
  constraint(count: number, maxTokens: number): ConstraintFn;
  /** problems of a finished reply against the format (empty = valid) */
  check(text: string): string[];
}

/**
 * The constraint of a response format, or null for plain text. Throws a 400 naming the schema keyword the engine
 * does not support (never ignored).
 */
export function formatConstraint(rf: ResponseFormat, tok: TextTokenizer): FormatConstraint | null {
  if (rf.type === 'text') return null;
  void tok;
  throw new HttpError(400, `response_format: ${rf.type} needs the JSON-schema constraint engine, which this build does not have yet`, 'response_format', {}, 'unsupported_parameter');
}

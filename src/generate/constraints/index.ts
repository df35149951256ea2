// Entry point for generation code: a task's token constraint for a tokenizer (the vocabulary bytes and trie are built
// once per tokenizer and cached), and applying a mask to logits. Unconstrained decoding simply skips all of this.
import type { TextTokenizer } from '../../tokenize/types.js';
import type { StructuredTask } from '../../eval/parse.js';
import { ConstraintVocab, TokenConstraint, type MaskResult } from './mask.js';
import { type FormatBounds, taskAutomaton } from './tasks.js';

export { ConstrainedSession, ConstraintVocab, TokenConstraint, type MaskResult } from './mask.js';
export { DEFAULT_BOUNDS, type FormatBounds, taskAutomaton, taskFormat } from './tasks.js';

const vocabs = new WeakMap<TextTokenizer, ConstraintVocab>();

/** The vocabulary view of a tokenizer, built once (about a second for a 50k vocabulary). */
export function constraintVocab(tok: TextTokenizer): ConstraintVocab {
  let v = vocabs.get(tok);
  if (!v) { v = new ConstraintVocab(tok); vocabs.set(tok, v); }
  return v;
}

/** The token constraint that makes `task`'s output always parse. */
export function taskConstraint(task: StructuredTask, tok: TextTokenizer, bounds: Partial<FormatBounds> = {}): TokenConstraint {
  return new TokenConstraint(constraintVocab(tok), taskAutomaton(task, bounds));
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

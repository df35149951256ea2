// Tokenization of instruction records for causal-LM fine-tuning: prompt and target are tokenized SEPARATELY and
// concatenated, so the loss mask boundary is exact; labels are -100 on every prompt and padding token; EOS is appended
// to the target and trained; over-long records are cut in the INPUT text, never silently in the target.
//
// BOS: added once, at the start of the prompt, only when the tokenizer adds one itself (tok.addsBos: Llama/Mistral yes,
// GPT-2/SmolLM no); the target is encoded without special tokens. A chat-template prompt that already starts with the
// BOS text is not given a second one. Note: SentencePiece tokenizers treat the separately encoded target as a new
// text (a leading "▁" on its first word); generation produces the same tokens after the prompt, so this is consistent.
import { MedloraError } from '../util/errors.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { MedRecord } from './schema.js';
import { buildPrompt, type PromptStyle } from './prompt.js';
import { instructionOf, renderTarget } from './tasks.js';

/** Label value ignored by the cross-entropy loss (PyTorch's default ignore_index). */
export const IGNORE_INDEX = -100;

export type OverflowPolicy = 'drop' | 'error';

export interface EncodeOptions {
  style: PromptStyle;
  /** total tokens (prompt + target + EOS); undefined = no limit */
  maxLength?: number;
  /** what to do with a record whose target + EOS (+ the prompt without any input) does not fit: drop it or error */
  overflow?: OverflowPolicy;
}

export interface EncodedExample {
  id: string;
  input_ids: number[];
  labels: number[];
  /** number of prompt tokens (labels -100) at the start */
  promptLength: number;
  /** the input text was shortened to fit maxLength */
  truncated: boolean;
}

export type EncodeResult = { ok: true; example: EncodedExample } | { ok: false; id: string; reason: string };

function promptIds(tok: TextTokenizer, prompt: string, style: PromptStyle): number[] {
  // prompt text already holds any chat-template special tokens as text; encode without adding, then add BOS once
  const ids = tok.encode(prompt, { addSpecialTokens: false });
  if (tok.addsBos && tok.bosId !== undefined && ids[0] !== tok.bosId) ids.unshift(tok.bosId);
  void style;
  return ids;
}

/** Target ids: the rendered answer without special tokens, then EOS (which is trained: the model must learn to stop). */
export function targetIds(tok: TextTokenizer, target: string): number[] {
  if (tok.eosId === undefined)
    throw new MedloraError(
      'the tokenizer defines no EOS token (eos_token in tokenizer_config.json); cannot mark the end of the answer',
    );
  return [...tok.encode(target, { addSpecialTokens: false }), tok.eosId];
}

/** Cut `input` at a character position (preferring a word boundary) so that the prompt fits in `budget` tokens. */
function fitInput(tok: TextTokenizer, style: PromptStyle, instruction: string, input: string, budget: number): string {
  let lo = 0,
    hi = input.length; // invariant: prefix of length lo fits
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (promptIds(tok, buildPrompt(style, instruction, input.slice(0, mid), tok), style).length <= budget) lo = mid;
    else hi = mid - 1;
  }
  let cut = input.slice(0, lo);
  const ws = cut.search(/\s\S*$/);
  if (ws > lo * 0.8) cut = cut.slice(0, ws); // back off to a word boundary when close
  return cut.trimEnd();
}

export function encodeRecord(r: MedRecord, tok: TextTokenizer, opts: EncodeOptions): EncodeResult {
  const instruction = instructionOf(r);
  const tgt = targetIds(tok, renderTarget(r));
  let input = r.input;
  let prm = promptIds(tok, buildPrompt(opts.style, instruction, input, tok), opts.style);
  let truncated = false;
  const max = opts.maxLength;
  if (max !== undefined && prm.length + tgt.length > max) {
    const budget = max - tgt.length;
    const bare = promptIds(tok, buildPrompt(opts.style, instruction, '', tok), opts.style).length;
    if (bare > budget) {
      const reason = `target (${tgt.length} tokens with EOS) + prompt without input (${bare}) exceed max_length ${max}`;
      if (opts.overflow === 'error')
        throw new MedloraError(`record ${r.id}: ${reason}; raise max_length or use overflow drop`, {
          field: 'max_length',
          related: ['overflow'],
        });
      return { ok: false, id: r.id, reason };
    }
    input = fitInput(tok, opts.style, instruction, input, budget);
    prm = promptIds(tok, buildPrompt(opts.style, instruction, input, tok), opts.style);
    truncated = true;
    if (prm.length + tgt.length > max)
      throw new Error(`internal: truncation of ${r.id} did not fit (${prm.length}+${tgt.length} > ${max})`);
  }
  return {
    ok: true,
    example: {
      id: r.id,
      input_ids: [...prm, ...tgt],
      labels: [...prm.map(() => IGNORE_INDEX), ...tgt],
      promptLength: prm.length,
      truncated,
    },
  };
}

export interface Batch {
  input_ids: number[][];
  labels: number[][];
  attention_mask: number[][];
}

/** Pad a batch to its longest example: pad id in input_ids, -100 in labels, 0 in attention_mask. */
export function collate(batch: EncodedExample[], padId: number, side: 'right' | 'left' = 'right'): Batch {
  if (batch.length === 0) throw new MedloraError('collate: empty batch');
  if (!Number.isInteger(padId) || padId < 0)
    throw new MedloraError(`collate: pad id must be a non-negative integer, got ${padId}`);
  const len = Math.max(...batch.map((e) => e.input_ids.length));
  const out: Batch = { input_ids: [], labels: [], attention_mask: [] };
  for (const e of batch) {
    const n = len - e.input_ids.length;
    const pad = <T>(xs: T[], v: T): T[] =>
      side === 'right' ? [...xs, ...Array<T>(n).fill(v)] : [...Array<T>(n).fill(v), ...xs];
    out.input_ids.push(pad(e.input_ids, padId));
    out.labels.push(pad(e.labels, IGNORE_INDEX));
    out.attention_mask.push(
      pad(
        e.input_ids.map(() => 1),
        0,
      ),
    );
  }
  return out;
}

/** The pad id to use: the tokenizer's, else EOS (common for Llama-style models without a pad token). */
export function padIdOf(tok: TextTokenizer): number {
  const p = tok.padId ?? tok.eosId;
  if (p === undefined) throw new MedloraError('the tokenizer has neither a pad nor an EOS token; cannot pad batches');
  return p;
}

export interface EncodeAllReport {
  examples: EncodedExample[];
  /** records left out because their target did not fit (overflow 'drop') */
  dropped: Array<{ id: string; reason: string }>;
  /** records whose input was shortened */
  truncated: number;
}

/** Encode many records with one policy; the trainer reports `dropped` and `truncated` to the user. */
export function encodeAll(records: Iterable<MedRecord>, tok: TextTokenizer, opts: EncodeOptions): EncodeAllReport {
  const rep: EncodeAllReport = { examples: [], dropped: [], truncated: 0 };
  for (const r of records) {
    const e = encodeRecord(r, tok, opts);
    if (!e.ok) {
      rep.dropped.push({ id: e.id, reason: e.reason });
      continue;
    }
    if (e.example.truncated) rep.truncated++;
    rep.examples.push(e.example);
  }
  return rep;
}

// Running a batch of completion requests of one model entry (the queue's runner for the OpenAI routes): one
// generateIds() call over their prompt ids, per-token callbacks for streaming, the response-format constraint, and
// the text cut at a stop string as generate() does.
import { generateIds, modelMaxPositions, type FinishReason } from '../../generate/generate.js';
import type { CompletionRequest } from './request.js';
import { formatConstraint } from './response-format.js';

export interface CompletionJob {
  req: CompletionRequest;
  /** streaming: called with the sequence's generated ids after every token */
  onToken?: (ids: readonly number[]) => void;
  /** true when the client is gone before the batch starts (the job is skipped) */
  cancelled: () => boolean;
}

export interface CompletionResult {
  text: string;
  ids: number[];
  finishReason: 'stop' | 'length';
  promptTokens: number;
  skipped: boolean;
}

/** Decoded text of generated ids (special tokens skipped; exact bytes when a format constrains the answer). */
export function decodeFor(req: CompletionRequest, ids: readonly number[]): string {
  return req.entry.tok.decode([...ids], {
    skipSpecialTokens: true,
    ...(req.responseFormat.type !== 'text' ? { cleanUpTokenizationSpaces: false } : {}),
  });
}

/** Cut text before the first stop string, as generate() does. */
export function cutAtStop(text: string, stop: readonly string[]): { text: string; stopped: boolean } {
  const cut = Math.min(...stop.map((s) => text.indexOf(s)).filter((i) => i >= 0));
  return Number.isFinite(cut) ? { text: text.slice(0, cut), stopped: true } : { text, stopped: false };
}

// OpenAI's finish reasons: the model ended (eos) or a stop string matched = stop; cut by max_tokens or the model's
// position limit = length
const finish = (r: FinishReason): 'stop' | 'length' => (r === 'eos' || r === 'stop' ? 'stop' : 'length');

/** Run jobs that share a batching key (same entry and settings; see completionKey). */
export function runCompletions(jobs: CompletionJob[]): CompletionResult[] {
  const live = jobs.map((j, i) => ({ j, i })).filter(({ j }) => !j.cancelled());
  const out: CompletionResult[] = jobs.map((j) => ({
    text: '',
    ids: [],
    finishReason: 'stop',
    promptTokens: j.req.promptIds.length,
    skipped: true,
  }));
  if (live.length === 0) return out;
  const first = live[0]!.j.req;
  const tok = first.entry.tok as typeof first.entry.tok & { eosIds?: number[] };
  const eosIds = tok.eosIds ?? (tok.eosId !== undefined ? [tok.eosId] : []);
  const fc = formatConstraint(first.responseFormat, tok);
  // a constrained answer must be finishable within max_tokens AND the model's position limit (prompt + answer)
  const maxPos = modelMaxPositions(first.entry.model) ?? Infinity;
  const budgets = live.map(({ j }) => Math.max(0, Math.min(first.maxTokens, maxPos - j.req.promptIds.length)));
  const res = generateIds(
    first.entry.model,
    live.map(({ j }) => j.req.promptIds),
    {
      maxNewTokens: first.maxTokens,
      temperature: first.temperature,
      ...(first.topP !== undefined ? { topP: first.topP } : {}),
      seed: first.seed,
      eosIds,
      padId: tok.padId ?? eosIds[0] ?? 0,
      vocabLimit: tok.vocabSize,
      decode: (ids) => decodeFor(first, ids),
      ...(first.stop.length ? { stopStrings: first.stop } : {}),
      ...(fc ? { constraint: fc.constraint(budgets) } : {}),
      onToken: (seq, ids) => live[seq]!.j.onToken?.(ids),
    },
  );
  res.forEach((r, k) => {
    const { j, i } = live[k]!;
    const cut = cutAtStop(decodeFor(j.req, r.ids), j.req.stop);
    // a constrained reply that ended by itself must validate; anything else is a decoder bug, never a silent answer
    const problems = fc && r.finishReason === 'eos' ? fc.check(cut.text) : [];
    if (problems.length)
      throw new Error(`response_format: the constrained reply does not validate (${problems.slice(0, 3).join('; ')})`);
    out[i] = {
      text: cut.text,
      ids: r.ids,
      finishReason: finish(r.finishReason),
      promptTokens: j.req.promptIds.length,
      skipped: false,
    };
  });
  return out;
}

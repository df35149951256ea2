// Text generation with a KV cache: batched, left-padded prompts; greedy or seeded sampling (see sampling.ts);
// repetition penalty; max_new_tokens; stop on any EOS id or on stop strings; an optional per-sequence constraint
// (an allowed-token mask, e.g. from src/generate/constraints) applied before the choice.
import { noGrad, scope, tensor, type Tensor } from '../tensor/index.js';
import type { CausalLM, KVCacheLike } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import { MedloraError } from '../util/errors.js';
import { applyAllowedMask, applyRepetitionPenalty, chooseToken, Prng, type SamplingOptions } from './sampling.js';

/** What a constraint says about the next token of one sequence. */
export interface ConstraintStep {
  /** allowed[id] = 1 for every allowed non-EOS token */
  allowed: Uint8Array;
  /** whether EOS may be chosen now */
  eosAllowed: boolean;
}

/** Per-sequence constraint: called before every choice with that sequence's generated ids so far. */
export type ConstraintFn = (sequence: number, generatedIds: readonly number[]) => ConstraintStep;

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** ids that end a sequence (default: the tokenizer's / model config's EOS ids) */
  eosIds?: number[];
  /** pad id for left padding (default: pad, else the first EOS id, else 0); never attended to */
  padId?: number;
  /** seed of the sampling PRNG (default 0); ignored when greedy */
  seed?: number;
  /** decode with the KV cache (default true); false recomputes the whole sequence every step (for checks) */
  useCache?: boolean;
  constraint?: ConstraintFn;
  /** prompts per forward batch (default: all) */
  batchSize?: number;
  /** after each batch: sequences finished so far, total */
  onProgress?: (done: number, total: number) => void;
  /** stop a sequence when its decoded text contains one of these (needs a tokenizer: generate()) */
  stopStrings?: string[];
  /** generate(): add the tokenizer's special tokens (BOS) when encoding prompts (default true; false for chat-templated text) */
  addSpecialTokens?: boolean;
  /**
   * ids >= this are never chosen (generate() sets the tokenizer's size: embedding matrices are often padded past the
   * tokenizer, e.g. Qwen2, and those rows have no text)
   */
  vocabLimit?: number;
  /** called after every token chosen for a sequence (prompt index, the sequence's generated ids so far); streaming */
  onToken?: (sequence: number, generatedIds: readonly number[]) => void;
  /**
   * the most positions a sequence (prompt + generated) may use; default: the model config's max_position_embeddings
   * (GPT-2: n_positions). A sequence that reaches it stops with finish reason 'max_positions'; a longer prompt is an error.
   */
  maxPositions?: number;
  /** internal: decoder for stop strings */
  decode?: (ids: number[]) => string;
}

/**
 * Why a sequence ended: 'eos' (an EOS id), 'stop' (a stop string), 'length' (maxNewTokens reached) or 'max_positions'
 * (prompt + generated reached the model's max_position_embeddings: positions past it were never trained).
 */
export type FinishReason = 'eos' | 'stop' | 'length' | 'max_positions';

export interface GeneratedIds {
  /** new token ids (without the final EOS) */
  ids: number[];
  finishReason: FinishReason;
  /** cut rather than ended: finishReason 'length' or 'max_positions' */
  truncated: boolean;
}

/** The most positions a model supports, from its config (max_position_embeddings; GPT-2 n_positions), if it says. */
export function modelMaxPositions(model: CausalLM): number | undefined {
  const c = model.config as Record<string, unknown>;
  for (const k of ['max_position_embeddings', 'n_positions']) {
    const v = c[k];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  }
  return undefined;
}

export interface Generated extends GeneratedIds {
  /** decoded new text (special tokens skipped; cut before a stop string) */
  text: string;
}

/** Generate from prompt ids (no tokenizer needed). */
export function generateIds(model: CausalLM, prompts: number[][], o: GenerateOptions): GeneratedIds[] {
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0)
    throw new MedloraError(`generate: maxNewTokens must be a non-negative integer, got ${o.maxNewTokens}`);
  checkSampling(o);
  const V = model.config.vocab_size;
  const maxPos = o.maxPositions ?? modelMaxPositions(model);
  prompts.forEach((p, i) => {
    if (p.length === 0)
      throw new MedloraError(`generate: prompt ${i} is empty (it needs at least one token, e.g. BOS)`);
    if (maxPos !== undefined && p.length > maxPos) {
      throw new MedloraError(
        `generate: prompt ${i} has ${p.length} tokens, more than the model's max_position_embeddings ${maxPos}; shorten the input (max_length)`,
      );
    }
    const bad = p.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
    if (bad !== undefined)
      throw new MedloraError(`generate: prompt ${i} has token id ${bad} outside the vocabulary [0, ${V})`);
  });
  const eos = o.eosIds ?? (model.config.eos_token_id as number[] | undefined) ?? [];
  const bs = o.batchSize && o.batchSize > 0 ? o.batchSize : Math.max(1, prompts.length);
  const rng = new Prng(o.seed ?? 0);
  const out: GeneratedIds[] = [];
  for (let s = 0; s < prompts.length; s += bs) {
    out.push(...noGrad(() => generateBatch(model, prompts.slice(s, s + bs), s, o, eos, rng, maxPos ?? Infinity)));
    o.onProgress?.(out.length, prompts.length);
  }
  return out;
}

/** Generate from text prompts (encoded with the tokenizer's special tokens, e.g. BOS). */
export function generate(
  model: CausalLM,
  tokenizer: TextTokenizer & { eosIds?: number[] },
  prompts: string[],
  o: GenerateOptions,
): Generated[] {
  const ids = prompts.map((p) => tokenizer.encode(p, { addSpecialTokens: o.addSpecialTokens ?? true }));
  const decode = (x: number[]): string => tokenizer.decode(x, { skipSpecialTokens: true });
  const eosIds = o.eosIds ?? tokenizer.eosIds ?? (tokenizer.eosId !== undefined ? [tokenizer.eosId] : []);
  const padId = o.padId ?? tokenizer.padId ?? eosIds[0] ?? 0;
  const res = generateIds(model, ids, { ...o, eosIds, padId, decode, vocabLimit: o.vocabLimit ?? tokenizer.vocabSize });
  return res.map((r) => {
    let text = decode(r.ids);
    if (r.finishReason === 'stop') {
      const cut = Math.min(...(o.stopStrings ?? []).map((s) => text.indexOf(s)).filter((i) => i >= 0));
      if (Number.isFinite(cut)) text = text.slice(0, cut);
    }
    return { ...r, text };
  });
}

function checkSampling(o: GenerateOptions): void {
  if (o.temperature !== undefined && !(o.temperature >= 0))
    throw new MedloraError(`generate: temperature must be >= 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0))
    throw new MedloraError(`generate: top-k must be a non-negative integer, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1))
    throw new MedloraError(`generate: top-p must be in (0, 1], got ${o.topP}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0))
    throw new MedloraError(`generate: repetition penalty must be > 0, got ${o.repetitionPenalty}`);
  if (o.stopStrings?.length && !o.decode)
    throw new MedloraError('generate: stop strings need a tokenizer (use generate(), not generateIds())');
}

function generateBatch(
  model: CausalLM,
  prompts: number[][],
  offset: number,
  o: GenerateOptions,
  eos: number[],
  rng: Prng,
  maxPos: number,
): GeneratedIds[] {
  const B = prompts.length;
  const L = Math.max(...prompts.map((p) => p.length));
  const pad = o.padId ?? eos[0] ?? 0;
  // left padding: every prompt ends at the same column, so the next token of every row is predicted at the end
  const seqs = prompts.map((p) => [...p]);
  const maskRows = prompts.map((p) => [
    ...new Array<number>(L - p.length).fill(0),
    ...new Array<number>(p.length).fill(1),
  ]);
  const padded = prompts.map((p) => [...new Array<number>(L - p.length).fill(pad), ...p]);
  let anyPad = prompts.some((p) => p.length < L);
  const gen: number[][] = prompts.map(() => []);
  const reason: (FinishReason | undefined)[] = prompts.map(() => undefined);
  const useCache = o.useCache ?? true;
  const cache: KVCacheLike | undefined = useCache ? model.newCache(B) : undefined;
  const eosSet = new Set(eos);
  try {
    let rows = scope(() =>
      lastLogits(
        model,
        tensor(padded, { dtype: 'i64' }),
        anyPad ? tensor(maskRows, { dtype: 'i64' }) : undefined,
        cache,
      ),
    );
    for (let step = 0; step < o.maxNewTokens; step++) {
      const next: number[] = [];
      for (let b = 0; b < B; b++) {
        if (!reason[b] && prompts[b]!.length + gen[b]!.length >= maxPos) reason[b] = 'max_positions';
        if (reason[b]) {
          next.push(pad);
          continue;
        }
        const row = rows[b]!;
        if (o.vocabLimit !== undefined && o.vocabLimit < row.length) row.fill(-Infinity, o.vocabLimit);
        if (o.repetitionPenalty !== undefined) applyRepetitionPenalty(row, seqs[b]!, o.repetitionPenalty);
        if (o.constraint) {
          const c = o.constraint(offset + b, gen[b]!);
          applyAllowedMask(row, c.allowed, c.eosAllowed ? eos : []);
          if (c.eosAllowed === false) for (const e of eos) if (e < row.length) row[e] = -Infinity;
        }
        const id = chooseToken(row, o, rng);
        next.push(id);
        if (eosSet.has(id)) {
          reason[b] = 'eos';
          continue;
        }
        gen[b]!.push(id);
        seqs[b]!.push(id);
        if (o.stopStrings?.length && o.decode) {
          const text = o.decode(gen[b]!);
          if (o.stopStrings.some((s) => text.includes(s))) reason[b] = 'stop';
        }
        o.onToken?.(offset + b, gen[b]!);
      }
      if (reason.every((r) => r !== undefined) || step === o.maxNewTokens - 1) break;
      for (let b = 0; b < B; b++) {
        padded[b]!.push(next[b]!);
        // a row stopped at its position limit is fed masked padding from now on, so its position ids stay in range
        // (the other rows are unaffected: their own positions and keys do not change)
        const stopped = reason[b] === 'max_positions';
        maskRows[b]!.push(stopped ? 0 : 1);
        if (stopped) anyPad = true;
      }
      rows = scope(() => {
        const mask = anyPad ? tensor(maskRows, { dtype: 'i64' }) : undefined;
        if (cache)
          return lastLogits(
            model,
            tensor(
              next.map((x) => [x]),
              { dtype: 'i64' },
            ),
            mask,
            cache,
          );
        return lastLogits(model, tensor(padded, { dtype: 'i64' }), mask, undefined);
      });
    }
  } finally {
    (cache as { dispose?: () => void } | undefined)?.dispose?.();
  }
  return gen.map((ids, b) => {
    // the last step's token may have filled the last position: that is the position limit, not maxNewTokens
    const r: FinishReason = reason[b] ?? (prompts[b]!.length + ids.length >= maxPos ? 'max_positions' : 'length');
    return { ids, finishReason: r, truncated: r === 'length' || r === 'max_positions' };
  });
}

/** Logits of the last position of every row, as f32 arrays. */
function lastLogits(
  model: CausalLM,
  ids: Tensor,
  mask: Tensor | undefined,
  cache: KVCacheLike | undefined,
): Float32Array[] {
  // only the last position of each row goes through the final norm and lm_head (HF generate's logits_to_keep=1): in the
  // prefill of 8 prompts of ~100 tokens the full head would be [800, vocab] of which 8 rows are used
  const [B, T] = ids.shape as [number, number];
  const lastPos = tensor(
    Array.from({ length: B }, (_, b) => b * T + T - 1),
    { dtype: 'i64' },
  );
  const logits = model.forward(ids, {
    ...(mask ? { attentionMask: mask } : {}),
    ...(cache ? { cache } : {}),
    outputPositions: lastPos,
  }); // logits: [B, V]
  const V = logits.size(-1);
  const last = logits.float().toFloat32Array();
  const out: Float32Array[] = [];
  for (let b = 0; b < B; b++) out.push(last.slice(b * V, (b + 1) * V));
  return out;
}

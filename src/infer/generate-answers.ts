// Generating answers for evaluation, extraction and serving: the settings, prompts built exactly as in training
// (encodeForEval), batched generation with an optional task constraint, timed (generateAnswers), and the split of
// whole batches over ranks (rankSlice). No console output: progress goes through callbacks.
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { MedRecord, TaskName } from '../data/schema.js';
import { getStructuredTask } from '../data/tasks/index.js';
import { encodeRecord, type EncodedExample } from '../data/encode.js';
import type { PromptStyle } from '../data/prompt.js';
import { generateIds, type ConstraintFn, type FinishReason } from '../generate/generate.js';
import { sessionsConstraint } from '../generate/constrain.js';
import { ConstrainedSession, taskConstraint, type Constraint } from '../generate/constraints/index.js';
import { MedloraError, fieldError } from '../util/errors.js';
import type { StructuredTask } from './parse.js';

/** How answers are generated. The defaults are greedy, constrained, Alpaca prompts (the trainer's default style). */
export interface GenerationSettings {
  maxNewTokens: number;
  /** prompts per forward batch */
  batchSize: number;
  /** 0 = greedy */
  temperature: number;
  topK?: number;
  topP?: number;
  /** > 1 discourages repeats; 1 = off */
  repetitionPenalty: number;
  /** sampling seed (batch b uses seed + b); ignored when greedy */
  seed: number;
  /** constrain tokens to the task's answer format (src/generate/constraints) */
  constrain: boolean;
  promptStyle: PromptStyle;
  /** shorten inputs exactly as training with data.max_length = maxLength did (undefined = no limit) */
  maxLength?: number;
}

export const DEFAULT_GENERATION: GenerationSettings = {
  maxNewTokens: 256,
  batchSize: 8,
  temperature: 0,
  repetitionPenalty: 1,
  seed: 0,
  constrain: true,
  promptStyle: 'alpaca',
};

export type ProgressFn = (phase: 'generate' | 'loss', done: number, total: number) => void;

/** One generated answer. */
export interface GeneratedAnswer {
  id: string;
  output: string;
  finishReason: FinishReason;
  /** cut by maxNewTokens or by the model's position limit (finishReason length / max_positions) */
  truncated: boolean;
  /** generated tokens, EOS included when the answer ended with it */
  newTokens: number;
}

/** Timing of a generation pass: total and constraint-mask time per generated token. */
export interface GenerationTiming {
  generatedTokens: number;
  seconds: number;
  msPerToken: number;
  /** time spent computing constraint masks (0 when unconstrained) */
  maskMs: number;
  maskMsPerToken: number;
}

/** A structured task name, or a clear error (qa is free text: scored by loss, see `medlora loss`). */
export function structuredTask(task: string, where = 'task'): StructuredTask {
  return getStructuredTask(task, where).name;
}

/** A record with an empty answer, for prompting on raw text (extract): the prompt never depends on the gold. */
export function textRecord(task: StructuredTask, id: string, input: string): MedRecord {
  return { id, task: task as TaskName, input, gold: getStructuredTask(task).empty() as MedRecord['gold'] };
}

/**
 * The encoded record exactly as the trainer sees it (src/data/encode.ts: same prompt builder, BOS rule and input
 * shortening); its first `promptLength` ids are the generation prompt.
 */
export function encodeForEval(
  r: MedRecord,
  tok: TextTokenizer,
  s: Pick<GenerationSettings, 'promptStyle' | 'maxLength'>,
): EncodedExample {
  const e = encodeRecord(r, tok, {
    style: s.promptStyle,
    ...(s.maxLength !== undefined ? { maxLength: s.maxLength } : {}),
    overflow: 'drop',
  });
  if (!e.ok) throw new MedloraError(`record ${r.id}: ${e.reason}; raise max_length`, { field: 'max_length' });
  return e.example;
}

/**
 * The constraint for one generateIds batch (src/generate/constrain.ts: one ConstrainedSession per sequence), timed:
 * the time of every call (advancing the session and computing the mask) is added to `stats.maskMs`.
 */
export function timedConstraint(
  c: Constraint,
  batch: number,
  maxNewTokens: number,
  stats: { maskMs: number },
): ConstraintFn {
  const inner = sessionsConstraint(Array.from({ length: batch }, () => new ConstrainedSession(c, maxNewTokens)));
  return (seq, generated) => {
    const t0 = performance.now();
    const step = inner(seq, generated);
    stats.maskMs += performance.now() - t0;
    return step;
  };
}

function checkSettings(s: GenerationSettings): void {
  // errors name the settings' snake_case keys (the HTTP API's and the contract's), carried in error.field
  const posInt = (v: number, field: string): void => {
    if (!Number.isInteger(v) || v < 1) throw fieldError(field, `${field} must be a positive integer, got ${v}`);
  };
  posInt(s.maxNewTokens, 'max_new_tokens');
  posInt(s.batchSize, 'batch_size');
  if (!(s.temperature >= 0)) throw fieldError('temperature', `temperature must be >= 0, got ${s.temperature}`);
  if (!(s.repetitionPenalty > 0))
    throw fieldError('repetition_penalty', `repetition_penalty must be > 0, got ${s.repetitionPenalty}`);
  if (s.maxLength !== undefined) posInt(s.maxLength, 'max_length');
}

/** The EOS ids generation stops on: the tokenizer's (generation_config.json included when loaded from a folder). */
function eosIdsOf(tok: TextTokenizer): number[] {
  const ids = (tok as TextTokenizer & { eosIds?: number[] }).eosIds ?? (tok.eosId !== undefined ? [tok.eosId] : []);
  if (ids.length === 0)
    throw new MedloraError('the tokenizer defines no EOS token, so generation cannot end an answer');
  return ids;
}

/**
 * Generate one answer per prompt (token ids, built by encodeForEval), in batches of `s.batchSize`, constrained to
 * `task`'s format when `s.constrain`. Returns the answers in order and the timing.
 */
export function generateAnswers(
  model: CausalLM,
  tok: TextTokenizer,
  task: StructuredTask,
  prompts: Array<{ id: string; ids: number[] }>,
  s: GenerationSettings,
  onProgress?: ProgressFn,
): { answers: GeneratedAnswer[]; timing: GenerationTiming } {
  checkSettings(s);
  if (tok.vocabSize > model.config.vocab_size) {
    throw new MedloraError(
      `the tokenizer has ${tok.vocabSize} tokens but the model's vocab_size is ${model.config.vocab_size}: wrong tokenizer for this model?`,
    );
  }
  const eosIds = eosIdsOf(tok);
  const padId = tok.padId ?? eosIds[0]!;
  const constraint = s.constrain ? taskConstraint(task, tok) : undefined;
  if (constraint && s.maxNewTokens < constraint.minBudget()) {
    throw fieldError(
      'max_new_tokens',
      `max_new_tokens ${s.maxNewTokens} is too small for a constrained ${task} answer (needs at least ${constraint.minBudget()})`,
    );
  }
  const stats = { maskMs: 0 };
  const answers: GeneratedAnswer[] = [];
  const t0 = performance.now();
  let tokens = 0;
  for (let b = 0; b * s.batchSize < prompts.length; b++) {
    const batch = prompts.slice(b * s.batchSize, (b + 1) * s.batchSize);
    const res = generateIds(
      model,
      batch.map((p) => p.ids),
      {
        // ids past the tokenizer (padded embedding rows) have no text and are never chosen
        maxNewTokens: s.maxNewTokens,
        eosIds,
        padId,
        vocabLimit: tok.vocabSize,
        temperature: s.temperature,
        seed: s.seed + b,
        ...(s.topK !== undefined ? { topK: s.topK } : {}),
        ...(s.topP !== undefined ? { topP: s.topP } : {}),
        ...(s.repetitionPenalty !== 1 ? { repetitionPenalty: s.repetitionPenalty } : {}),
        ...(constraint ? { constraint: timedConstraint(constraint, batch.length, s.maxNewTokens, stats) } : {}),
      },
    );
    res.forEach((r, i) => {
      const n = r.ids.length + (r.finishReason === 'eos' ? 1 : 0);
      tokens += n;
      answers.push({
        id: batch[i]!.id,
        output: tok.decode(r.ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }),
        finishReason: r.finishReason,
        truncated: r.truncated,
        newTokens: n,
      });
    });
    onProgress?.('generate', answers.length, prompts.length);
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    answers,
    timing: {
      generatedTokens: tokens,
      seconds,
      msPerToken: tokens ? (1000 * seconds) / tokens : 0,
      maskMs: stats.maskMs,
      maskMsPerToken: tokens ? stats.maskMs / tokens : 0,
    },
  };
}

/** What evaluateModel and extract need to split their records over ranks. */
export interface EvalParallel {
  readonly rank: number;
  readonly worldSize: number;
  /** every rank's list, in rank order */
  gatherLists<T>(items: readonly T[]): T[][];
  allSum(values: readonly number[]): number[];
}

/**
 * This rank's records [lo, hi): whole generation batches, so batches, padding and per-batch seeds are those of one
 * process and the gathered answers are identical to a 1-process run's.
 */
export function rankSlice(n: number, batchSize: number, par?: EvalParallel): { lo: number; hi: number } {
  if (!par) return { lo: 0, hi: n };
  const per = Math.ceil(Math.ceil(n / batchSize) / par.worldSize) * batchSize;
  return { lo: Math.min(n, par.rank * per), hi: Math.min(n, (par.rank + 1) * per) };
}

// Evaluating a model on records of one structured task (the library call behind `medlora eval`): generate
// (src/infer/generate-answers.ts), parse, score (score.ts), and the test loss / perplexity of the same encoded
// records; records split over ranks when run data-parallel. The compact summary of a run (runScores) for scores.json and --json.
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { MedRecord } from '../data/schema.js';
import type { FinishReason } from '../generate/generate.js';
import { datasetLoss, type DatasetLoss } from '../model/dataset-loss.js';
import { MedloraError } from '../util/errors.js';
import { DEFAULT_MATCH, type MatchOptions } from './match.js';
import { parseOutput, type StructuredTask } from '../infer/parse.js';
import { scoreRecords, type PredLine, type ScoreResult } from './score.js';
import {
  DEFAULT_GENERATION,
  encodeForEval,
  generateAnswers,
  structuredTask,
  type GenerationSettings,
  type GenerationTiming,
  rankSlice,
  type EvalParallel,
  type ProgressFn,
} from '../infer/generate-answers.js';

/** One line of predictions.jsonl. */
export interface PredictionRow {
  id: string;
  output: string;
  /** the parsed answer (the task's gold shape) */
  pred: unknown;
  /** output lines the parser could not read */
  unparsed: string[];
  finish_reason: FinishReason;
  /** the answer was cut (finish_reason length or max_positions) */
  truncated: boolean;
  new_tokens: number;
}

export interface EvalRun {
  task: StructuredTask;
  score: ScoreResult;
  predictions: PredictionRow[];
  /** test loss over the same encoded records (answer + EOS tokens), or null when not computed */
  loss: DatasetLoss | null;
  parse: {
    records: number;
    clean: number;
    rate: number;
    unparsedLines: number;
    hitLength: number;
    hitPositions: number;
  };
  timing: GenerationTiming;
  settings: GenerationSettings;
}

export interface EvaluateOptions extends Partial<GenerationSettings> {
  match?: MatchOptions;
  /** compute the test loss / perplexity too (default true) */
  loss?: boolean;
  /** names stored in the score result (for reports): the data file and predictions file */
  dataLabel?: string;
  predLabel?: string;
  onProgress?: ProgressFn;
  /** per task, the instruction training used (an adapter's contract) for records that carry none of their own */
  instructions?: Record<string, string>;
  /** several ranks (src/train/distributed.ts DataParallel): each generates its share, every rank gets all results */
  parallel?: EvalParallel;
}

/**
 * Evaluate a model on records of one structured task: generate, parse, score, and (by default) the test loss.
 * The model is put in eval mode (dropout off) for the call and left so.
 */
export function evaluateModel(
  model: CausalLM,
  tok: TextTokenizer,
  records: MedRecord[],
  o: EvaluateOptions = {},
): EvalRun {
  if (records.length === 0) throw new MedloraError('evaluate: no records');
  const task = structuredTask(records[0]!.task, `record ${records[0]!.id}`);
  const other = records.find((r) => r.task !== task);
  if (other)
    throw new MedloraError(
      `record ${other.id}: task ${other.task}, but the others are ${task}; evaluate one task at a time`,
    );
  const s: GenerationSettings = { ...DEFAULT_GENERATION, ...definedOnly(o) };
  (model as { train?: (on: boolean) => unknown }).train?.(false);
  const ins = o.instructions ?? {};
  const encoded = records.map((r) =>
    encodeForEval(
      r.instruction === undefined && ins[r.task] !== undefined ? { ...r, instruction: ins[r.task]! } : r,
      tok,
      s,
    ),
  );
  const par = o.parallel;
  const { lo, hi } = rankSlice(records.length, s.batchSize, par);
  const prompts = encoded
    .map((e, i) => ({ id: records[i]!.id, ids: e.input_ids.slice(0, e.promptLength) }))
    .slice(lo, hi);
  let { answers, timing } = generateAnswers(
    model,
    tok,
    task,
    prompts,
    { ...s, seed: s.seed + lo / s.batchSize },
    o.onProgress,
  );
  if (par) {
    answers = par.gatherLists(answers).flat();
    const [tokens, maskMs] = par.allSum([timing.generatedTokens, timing.maskMs]);
    const seconds = Math.max(...par.gatherLists([timing.seconds]).flat());
    timing = {
      generatedTokens: tokens!,
      seconds,
      msPerToken: tokens ? (1000 * seconds) / tokens : 0,
      maskMs: maskMs!,
      maskMsPerToken: tokens ? maskMs! / tokens : 0,
    };
  }
  const preds = new Map<string, { value: PredLine; where: string }>();
  const predictions: PredictionRow[] = answers.map((a) => {
    preds.set(a.id, { value: { id: a.id, output: a.output }, where: `generated answer ${a.id}` });
    const p = parseOutput(task, a.output);
    return {
      id: a.id,
      output: a.output,
      pred: p.items,
      unparsed: p.unparsed,
      finish_reason: a.finishReason,
      truncated: a.truncated,
      new_tokens: a.newTokens,
    };
  });
  const scored = scoreRecords(task, records, preds, o.match ?? DEFAULT_MATCH);
  const score: ScoreResult = { ...scored, gold: o.dataLabel, pred: o.predLabel };
  let loss: DatasetLoss | null = null;
  if (o.loss !== false) {
    const mine = encoded.slice(lo, hi);
    loss = mine.length
      ? datasetLoss(model, mine, {
          batchSize: s.batchSize,
          onBatch: (done) => o.onProgress?.('loss', done, mine.length),
        })
      : { loss: NaN, perplexity: NaN, tokens: 0, rows: 0 };
    if (par) {
      const [sum, tokens, rows] = par.allSum([loss.tokens ? loss.loss * loss.tokens : 0, loss.tokens, loss.rows]);
      const mean = tokens ? sum! / tokens : NaN;
      loss = { loss: mean, perplexity: Math.exp(mean), tokens: tokens!, rows: rows! };
    }
  }
  const clean = predictions.filter((p) => p.unparsed.length === 0).length;
  return {
    task,
    score,
    predictions,
    loss,
    timing,
    settings: s,
    parse: {
      records: predictions.length,
      clean,
      rate: clean / predictions.length,
      unparsedLines: predictions.reduce((a, p) => a + p.unparsed.length, 0),
      hitLength: predictions.filter((p) => p.finish_reason === 'length').length,
      hitPositions: predictions.filter((p) => p.finish_reason === 'max_positions').length,
    },
  };
}

function definedOnly(o: Partial<GenerationSettings>): Partial<GenerationSettings> {
  const keys: Array<keyof GenerationSettings> = [
    'maxNewTokens',
    'batchSize',
    'temperature',
    'topK',
    'topP',
    'repetitionPenalty',
    'seed',
    'constrain',
    'promptStyle',
    'maxLength',
  ];
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out as Partial<GenerationSettings>;
}

/** The compact, JSON-ready summary of a run (scores.json, --json, the comparison table). */
export interface RunScores {
  name: string;
  task: StructuredTask;
  records: number;
  metrics: ScoreResult['metrics'];
  test_loss: number | null;
  perplexity: number | null;
  loss_tokens: number | null;
  parse_rate: number;
  unparsed_lines: number;
  /** answers cut by --max-new-tokens */
  hit_max_new_tokens: number;
  /** answers cut at the model's max_position_embeddings */
  hit_max_positions: number;
  timing: { generated_tokens: number; seconds: number; ms_per_token: number; constraint_ms_per_token: number };
  settings: GenerationSettings;
  [extra: string]: unknown;
}

export function runScores(name: string, r: EvalRun, extra: Record<string, unknown> = {}): RunScores {
  return {
    name,
    ...extra,
    task: r.task,
    records: r.parse.records,
    metrics: r.score.metrics,
    test_loss: r.loss ? r.loss.loss : null,
    perplexity: r.loss ? r.loss.perplexity : null,
    loss_tokens: r.loss ? r.loss.tokens : null,
    parse_rate: r.parse.rate,
    unparsed_lines: r.parse.unparsedLines,
    hit_max_new_tokens: r.parse.hitLength,
    hit_max_positions: r.parse.hitPositions,
    timing: {
      generated_tokens: r.timing.generatedTokens,
      seconds: r.timing.seconds,
      ms_per_token: r.timing.msPerToken,
      constraint_ms_per_token: r.timing.maskMsPerToken,
    },
    settings: r.settings,
  };
}

// Generation-based evaluation (the library call behind `medlora eval`, the trainer's eval_generate_steps hook and the
// serve layer): prompts built exactly as in training, batched generation with an optional task constraint, parsing,
// scoring (src/eval/score.ts), the test loss / perplexity of the same encoded records, and constraint timings.
// No console output here: progress goes through callbacks.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { MedRecord, TaskName } from '../data/schema.js';
import { getStructuredTask, getTask } from '../data/tasks/index.js';
import { encodeRecord, type EncodedExample } from '../data/encode.js';
import type { PromptStyle } from '../data/prompt.js';
import type { TrainConfig } from '../train/config.js';
import type { GenerateEvalScores } from '../train/metrics.js';
import { generateIds, type ConstraintFn, type FinishReason } from '../generate/generate.js';
import { sessionsConstraint } from '../generate/constrain.js';
import { ConstrainedSession, taskConstraint, type Constraint } from '../generate/constraints/index.js';
import { datasetLoss, type DatasetLoss } from '../model/dataset-loss.js';
import { MedloraError } from '../util/errors.js';
import { DEFAULT_MATCH, type MatchOptions } from './match.js';
import { prf } from './metrics.js';
import { parseOutput, type StructuredTask } from './parse.js';
import { scoreRecords, type PredLine, type ScoreResult } from './score.js';
import { describeOptions, escapeHtml, renderHtml, renderText, reportJson } from './report.js';

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
  maxNewTokens: 256, batchSize: 8, temperature: 0, repetitionPenalty: 1, seed: 0, constrain: true, promptStyle: 'alpaca',
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
export function structuredTask(task: string, where = '--task'): StructuredTask {
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
export function encodeForEval(r: MedRecord, tok: TextTokenizer, s: Pick<GenerationSettings, 'promptStyle' | 'maxLength'>): EncodedExample {
  const e = encodeRecord(r, tok, { style: s.promptStyle, ...(s.maxLength !== undefined ? { maxLength: s.maxLength } : {}), overflow: 'drop' });
  if (!e.ok) throw new MedloraError(`record ${r.id}: ${e.reason}; raise --max-length`);
  return e.example;
}

/**
 * The constraint for one generateIds batch (src/generate/constrain.ts: one ConstrainedSession per sequence), timed:
 * the time of every call (advancing the session and computing the mask) is added to `stats.maskMs`.
 */
export function timedConstraint(c: Constraint, batch: number, maxNewTokens: number, stats: { maskMs: number }): ConstraintFn {
  const inner = sessionsConstraint(Array.from({ length: batch }, () => new ConstrainedSession(c, maxNewTokens)));
  return (seq, generated) => {
    const t0 = performance.now();
    const step = inner(seq, generated);
    stats.maskMs += performance.now() - t0;
    return step;
  };
}

function checkSettings(s: GenerationSettings): void {
  const posInt = (v: number, name: string): void => {
    if (!Number.isInteger(v) || v < 1) throw new MedloraError(`${name} must be a positive integer, got ${v}`);
  };
  posInt(s.maxNewTokens, '--max-new-tokens');
  posInt(s.batchSize, '--batch-size');
  if (!(s.temperature >= 0)) throw new MedloraError(`--temperature must be >= 0, got ${s.temperature}`);
  if (!(s.repetitionPenalty > 0)) throw new MedloraError(`--repetition-penalty must be > 0, got ${s.repetitionPenalty}`);
  if (s.maxLength !== undefined) posInt(s.maxLength, '--max-length');
}

/** The EOS ids generation stops on: the tokenizer's (generation_config.json included when loaded from a folder). */
function eosIdsOf(tok: TextTokenizer): number[] {
  const ids = (tok as TextTokenizer & { eosIds?: number[] }).eosIds ?? (tok.eosId !== undefined ? [tok.eosId] : []);
  if (ids.length === 0) throw new MedloraError('the tokenizer defines no EOS token, so generation cannot end an answer');
  return ids;
}

/**
 * Generate one answer per prompt (token ids, built by encodeForEval), in batches of `s.batchSize`, constrained to
 * `task`'s format when `s.constrain`. Returns the answers in order and the timing.
 */
export function generateAnswers(
  model: CausalLM, tok: TextTokenizer, task: StructuredTask, prompts: Array<{ id: string; ids: number[] }>,
  s: GenerationSettings, onProgress?: ProgressFn,
): { answers: GeneratedAnswer[]; timing: GenerationTiming } {
  checkSettings(s);
  if (tok.vocabSize > model.config.vocab_size) {
    throw new MedloraError(`the tokenizer has ${tok.vocabSize} tokens but the model's vocab_size is ${model.config.vocab_size}: wrong tokenizer for this model?`);
  }
  const eosIds = eosIdsOf(tok);
  const padId = tok.padId ?? eosIds[0]!;
  const constraint = s.constrain ? taskConstraint(task, tok) : undefined;
  if (constraint && s.maxNewTokens < constraint.minBudget()) {
    throw new MedloraError(`--max-new-tokens ${s.maxNewTokens} is too small for a constrained ${task} answer (needs at least ${constraint.minBudget()})`);
  }
  const stats = { maskMs: 0 };
  const answers: GeneratedAnswer[] = [];
  const t0 = performance.now();
  let tokens = 0;
  for (let b = 0; b * s.batchSize < prompts.length; b++) {
    const batch = prompts.slice(b * s.batchSize, (b + 1) * s.batchSize);
    const res = generateIds(model, batch.map((p) => p.ids), {
      // ids past the tokenizer (padded embedding rows) have no text and are never chosen
      maxNewTokens: s.maxNewTokens, eosIds, padId, vocabLimit: tok.vocabSize, temperature: s.temperature, seed: s.seed + b,
      ...(s.topK !== undefined ? { topK: s.topK } : {}), ...(s.topP !== undefined ? { topP: s.topP } : {}),
      ...(s.repetitionPenalty !== 1 ? { repetitionPenalty: s.repetitionPenalty } : {}),
      ...(constraint ? { constraint: timedConstraint(constraint, batch.length, s.maxNewTokens, stats) } : {}),
    });
    res.forEach((r, i) => {
      const n = r.ids.length + (r.finishReason === 'eos' ? 1 : 0);
      tokens += n;
      answers.push({ id: batch[i]!.id, output: tok.decode(r.ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }), finishReason: r.finishReason, truncated: r.truncated, newTokens: n });
    });
    onProgress?.('generate', answers.length, prompts.length);
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    answers,
    timing: { generatedTokens: tokens, seconds, msPerToken: tokens ? (1000 * seconds) / tokens : 0, maskMs: stats.maskMs, maskMsPerToken: tokens ? stats.maskMs / tokens : 0 },
  };
}

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
  parse: { records: number; clean: number; rate: number; unparsedLines: number; hitLength: number; hitPositions: number };
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

/** What evaluateModel needs to split its records over ranks. */
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

/**
 * Evaluate a model on records of one structured task: generate, parse, score, and (by default) the test loss.
 * The model is put in eval mode (dropout off) for the call and left so.
 */
export function evaluateModel(model: CausalLM, tok: TextTokenizer, records: MedRecord[], o: EvaluateOptions = {}): EvalRun {
  if (records.length === 0) throw new MedloraError('evaluate: no records');
  const task = structuredTask(records[0]!.task, `record ${records[0]!.id}`);
  const other = records.find((r) => r.task !== task);
  if (other) throw new MedloraError(`record ${other.id}: task ${other.task}, but the others are ${task}; evaluate one task at a time (--task)`);
  const s: GenerationSettings = { ...DEFAULT_GENERATION, ...definedOnly(o) };
  (model as { train?: (on: boolean) => unknown }).train?.(false);
  const ins = o.instructions ?? {};
  const encoded = records.map((r) => encodeForEval(r.instruction === undefined && ins[r.task] !== undefined ? { ...r, instruction: ins[r.task]! } : r, tok, s));
  const par = o.parallel;
  const { lo, hi } = rankSlice(records.length, s.batchSize, par);
  const prompts = encoded.map((e, i) => ({ id: records[i]!.id, ids: e.input_ids.slice(0, e.promptLength) })).slice(lo, hi);
  let { answers, timing } = generateAnswers(model, tok, task, prompts, { ...s, seed: s.seed + lo / s.batchSize }, o.onProgress);
  if (par) {
    answers = par.gatherLists(answers).flat();
    const [tokens, maskMs] = par.allSum([timing.generatedTokens, timing.maskMs]);
    const seconds = Math.max(...par.gatherLists([timing.seconds]).flat());
    timing = { generatedTokens: tokens!, seconds, msPerToken: tokens ? (1000 * seconds) / tokens : 0, maskMs: maskMs!, maskMsPerToken: tokens ? maskMs! / tokens : 0 };
  }
  const preds = new Map<string, { value: PredLine; where: string }>();
  const predictions: PredictionRow[] = answers.map((a) => {
    preds.set(a.id, { value: { id: a.id, output: a.output }, where: `generated answer ${a.id}` });
    const p = parseOutput(task, a.output);
    return { id: a.id, output: a.output, pred: p.items, unparsed: p.unparsed, finish_reason: a.finishReason, truncated: a.truncated, new_tokens: a.newTokens };
  });
  const scored = scoreRecords(task, records, preds, o.match ?? DEFAULT_MATCH);
  const score: ScoreResult = { ...scored, gold: o.dataLabel, pred: o.predLabel };
  let loss: DatasetLoss | null = null;
  if (o.loss !== false) {
    const mine = encoded.slice(lo, hi);
    loss = mine.length ? datasetLoss(model, mine, { batchSize: s.batchSize, onBatch: (done) => o.onProgress?.('loss', done, mine.length) }) :
      { loss: NaN, perplexity: NaN, tokens: 0, rows: 0 };
    if (par) {
      const [sum, tokens, rows] = par.allSum([loss.tokens ? loss.loss * loss.tokens : 0, loss.tokens, loss.rows]);
      const mean = tokens ? sum! / tokens : NaN;
      loss = { loss: mean, perplexity: Math.exp(mean), tokens: tokens!, rows: rows! };
    }
  }
  const clean = predictions.filter((p) => p.unparsed.length === 0).length;
  return {
    task, score, predictions, loss, timing, settings: s,
    parse: {
      records: predictions.length, clean, rate: clean / predictions.length,
      unparsedLines: predictions.reduce((a, p) => a + p.unparsed.length, 0),
      hitLength: predictions.filter((p) => p.finish_reason === 'length').length,
      hitPositions: predictions.filter((p) => p.finish_reason === 'max_positions').length,
    },
  };
}

function definedOnly(o: Partial<GenerationSettings>): Partial<GenerationSettings> {
  const keys: Array<keyof GenerationSettings> = ['maxNewTokens', 'batchSize', 'temperature', 'topK', 'topP', 'repetitionPenalty', 'seed', 'constrain', 'promptStyle', 'maxLength'];
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
    name, ...extra, task: r.task, records: r.parse.records, metrics: r.score.metrics,
    test_loss: r.loss ? r.loss.loss : null, perplexity: r.loss ? r.loss.perplexity : null, loss_tokens: r.loss ? r.loss.tokens : null,
    parse_rate: r.parse.rate, unparsed_lines: r.parse.unparsedLines, hit_max_new_tokens: r.parse.hitLength, hit_max_positions: r.parse.hitPositions,
    timing: { generated_tokens: r.timing.generatedTokens, seconds: r.timing.seconds, ms_per_token: r.timing.msPerToken, constraint_ms_per_token: r.timing.maskMsPerToken },
    settings: r.settings,
  };
}

// ------------------------------------------------------------------------------------------------------------------
// the trainer hook (eval_generate_steps)

/** What the trainer logs from a generation-based evaluation (metrics.jsonl keys): defined by the trainer. */
export type GenerateEvalMetrics = GenerateEvalScores;

/**
 * A validation-sample evaluator for the trainer: the first `samples` structured records (file order, so every call
 * sees the same sample), scored per task; gen_f1/precision/recall are micro averages with counts pooled over the
 * sample's tasks, plus gen_f1/<task> per task when there are several. No loss (the trainer has eval_loss).
 */
export function generationEvaluator(model: CausalLM, tok: TextTokenizer, records: MedRecord[], o: EvaluateOptions & { samples: number }): () => GenerateEvalMetrics {
  const sample = records.filter((r) => getTask(r.task).structured).slice(0, o.samples);
  if (sample.length === 0) throw new MedloraError('eval_generate_steps: the validation data has no records of a structured task to generate answers for');
  const byTask = new Map<string, MedRecord[]>();
  for (const r of sample) byTask.set(r.task, [...(byTask.get(r.task) ?? []), r]);
  return () => {
    let tp = 0, fp = 0, fn = 0, clean = 0;
    const out: Record<string, number> = {};
    for (const [task, recs] of byTask) {
      const run = evaluateModel(model, tok, recs, { ...o, loss: false });
      const m = run.score.metrics.micro;
      tp += m.tp; fp += m.fp; fn += m.fn; clean += run.parse.clean;
      if (byTask.size > 1) out[`gen_f1/${task}`] = m.f1;
    }
    // the same 0/0 conventions as every other score (metrics.ts)
    const m = prf({ tp, fp, fn });
    return { gen_f1: m.f1, gen_precision: m.precision, gen_recall: m.recall, gen_parse_rate: clean / sample.length, gen_samples: sample.length, ...out };
  };
}

/**
 * The evaluator `medlora train` passes to the trainer for training.eval_generate_steps: the validation file's first
 * eval_generate_samples structured records, prompted as in training (data.prompt_style, data.max_length), greedy and
 * constrained, eval_generate_max_new_tokens per answer, per_device_eval_batch_size prompts per batch.
 */
export async function trainingGenerateEval(trained: object, cfg: TrainConfig): Promise<() => GenerateEvalMetrics> {
  // the trainer's model type is structural (forward + parameters); generation also needs the KV cache of a CausalLM
  if (typeof (trained as Partial<CausalLM>).newCache !== 'function') throw new MedloraError('training.eval_generate_steps: the model cannot generate (no KV cache)');
  const model = trained as CausalLM;
  const file = cfg.data.validation;
  if (!file) throw new MedloraError('training.eval_generate_steps needs data.validation (canonical records)');
  const { loadRecords } = await import('../data/jsonl.js');
  const { loadTokenizer } = await import('../tokenize/tokenizer.js');
  let records: MedRecord[];
  try {
    ({ records } = await loadRecords(file));
  } catch (e) {
    throw new MedloraError(`training.eval_generate_steps needs data.validation as canonical records ({"id", "task", "input", "gold"}); ${(e as Error).message}`);
  }
  const tok = loadTokenizer(cfg.tokenizer ?? cfg.model);
  const t = cfg.training;
  return generationEvaluator(model, tok, records, {
    samples: t.eval_generate_samples, maxNewTokens: t.eval_generate_max_new_tokens, batchSize: t.per_device_eval_batch_size,
    promptStyle: cfg.data.prompt_style, ...(cfg.data.max_length !== null ? { maxLength: cfg.data.max_length } : {}),
  });
}

// ------------------------------------------------------------------------------------------------------------------
// output files and text (predictions.jsonl, scores.json, report.json, report.html; one report for all compared runs)

/** A run with its display name and what produced it. */
export interface NamedEvalRun {
  name: string;
  model: string;
  adapter: string | null;
  run: EvalRun;
}

const f3 = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(3));
const f4 = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(4));

/** Rows (label, one value per run) of the side-by-side table. */
export function comparisonRows(runs: NamedEvalRun[]): { head: string[]; rows: string[][] } {
  const tasks = new Set(runs.map((r) => r.run.task));
  if (tasks.size > 1) throw new MedloraError(`cannot compare runs of different tasks (${[...tasks].join(', ')})`);
  const types = [...new Set(runs.flatMap((r) => r.run.score.metrics.perType.map((t) => t.type)))].sort();
  const row = (label: string, f: (r: EvalRun) => string): string[] => [label, ...runs.map((r) => f(r.run))];
  const m = (r: EvalRun) => r.score.metrics;
  return {
    head: ['', ...runs.map((r) => r.name)],
    rows: [
      row('micro precision', (r) => f3(m(r).micro.precision)),
      row('micro recall', (r) => f3(m(r).micro.recall)),
      row('micro F1', (r) => f3(m(r).micro.f1)),
      row('macro F1', (r) => f3(m(r).macro.f1)),
      ...types.map((t) => row(`F1 ${t}`, (r) => f3(m(r).perType.find((x) => x.type === t)?.f1 ?? null))),
      row('exact match', (r) => f3(m(r).exact.rate)),
      row('test loss', (r) => f4(r.loss?.loss ?? null)),
      row('perplexity', (r) => f4(r.loss?.perplexity ?? null)),
      row('parse rate', (r) => f3(r.parse.rate)),
      row('unparsed lines', (r) => String(r.parse.unparsedLines)),
      row('cut by max-new-tokens', (r) => String(r.parse.hitLength)),
      row('cut by max positions', (r) => String(r.parse.hitPositions)),
      row('ms / generated token', (r) => r.timing.msPerToken.toFixed(2)),
      row('constraint ms / token', (r) => (r.settings.constrain ? r.timing.maskMsPerToken.toFixed(3) : 'off')),
    ],
  };
}

function textTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

/** One run's extra facts, as lines (loss, parse rate, timing). */
function runFacts(r: EvalRun): string[] {
  const t = r.timing;
  return [
    r.loss ? `test loss ${f4(r.loss.loss)}  perplexity ${f4(r.loss.perplexity)}  (${r.loss.tokens} answer tokens)` : 'test loss: not computed',
    `parse rate ${f3(r.parse.rate)} (${r.parse.clean}/${r.parse.records} answers parse cleanly; ${r.parse.unparsedLines} unparsed lines; ${r.parse.hitLength} cut by --max-new-tokens${r.parse.hitPositions ? `, ${r.parse.hitPositions} TRUNCATED at the model's max_position_embeddings` : ''})`,
    `generation: ${t.generatedTokens} tokens in ${t.seconds.toFixed(1)} s (${t.msPerToken.toFixed(2)} ms/token)` +
      (r.settings.constrain ? `, constraint masks ${t.maskMsPerToken.toFixed(3)} ms/token` : ', unconstrained'),
  ];
}

/** Terminal text: the score table and facts for one run, or the side-by-side table for several. */
export function evalText(runs: NamedEvalRun[]): string {
  if (runs.length === 1) return `${renderText(runs[0]!.run.score)}\n${runFacts(runs[0]!.run).join('\n')}`;
  const { head, rows } = comparisonRows(runs);
  return `${textTable(head, rows)}\n\ntask ${runs[0]!.run.task}, ${runs[0]!.run.parse.records} records; ${describeOptions(runs[0]!.run.score)}`;
}

function bodyOf(html: string): string {
  const m = /<body>([\s\S]*)<\/body>/.exec(html);
  return m ? m[1]! : html;
}

/** report.html: settings and (for several runs) the comparison table, then each run's scores and errors by type. */
export function evalHtml(runs: NamedEvalRun[], title: string): string {
  const { head, rows } = comparisonRows(runs);
  const table = `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) =>
    `<tr>${r.map((c, i) => `<td${i ? ' class="n"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
  const runsList = runs.map((r) => `<li><b>${escapeHtml(r.name)}</b>: model ${escapeHtml(r.model)}${r.adapter ? `, adapter ${escapeHtml(r.adapter)}` : ' (no adapter)'}; ` +
    `${escapeHtml(runFacts(r.run).join('; '))}</li>`).join('');
  const s = runs[0]!.run.settings;
  const settings = `max_new_tokens ${s.maxNewTokens}, batch ${s.batchSize}, ${s.temperature > 0 ? `temperature ${s.temperature}, seed ${s.seed}` : 'greedy'}, ` +
    `repetition penalty ${s.repetitionPenalty}, ${s.constrain ? 'constrained decoding' : 'unconstrained'}, prompt ${s.promptStyle}` +
    `${s.maxLength !== undefined ? `, max_length ${s.maxLength}` : ''}`;
  const sections = runs.map((r) => `<section><h2>${escapeHtml(r.name)}</h2>${bodyOf(renderHtml(r.run.score)).replace(/<h1>[\s\S]*?<\/h1>/, '')}</section>`).join('\n');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
details{margin:.3em 0}.fp{color:#a00}.fn{color:#05a}blockquote{color:#555;margin:.2em 1em;white-space:pre-wrap}code{background:#f4f4f4}
section{border-top:2px solid #ddd;margin-top:2em}</style></head><body>
<h1>${escapeHtml(title)}</h1><p>${escapeHtml(settings)}</p><ul>${runsList}</ul>${table}
<p><small>Parse rate: answers with no unparsed line. Test loss: token-weighted cross-entropy of the gold answer + EOS given the same prompt; perplexity = exp(loss).</small></p>
${sections}
</body></html>
`;
}

/** A file-system-safe folder name for a run. */
export function runFolderName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_') || 'run';
}

function predictionsJsonl(r: EvalRun): string {
  return r.predictions.map((p) => `${JSON.stringify(p)}\n`).join('');
}

/**
 * Write the output folder. One run: predictions.jsonl, scores.json, report.json, report.html. Several runs: the
 * same four at the top (scores.json and report.json hold {"runs": [...]}) and each run's predictions.jsonl in
 * <run name>/. Returns the paths written and the scores object (what --json prints).
 */
export function writeEvalOutputs(dir: string, runs: NamedEvalRun[], title = 'medlora eval'): { files: string[]; scores: unknown } {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, text: string): void => { const p = join(dir, name); mkdirSync(dirname(p), { recursive: true }); writeFileSync(p, text); files.push(p); };
  const scoresOf = (r: NamedEvalRun): RunScores => runScores(r.name, r.run, { model: r.model, adapter: r.adapter });
  const reportOf = (r: NamedEvalRun): Record<string, unknown> => ({ ...(reportJson(r.run.score) as Record<string, unknown>), name: r.name, eval: scoresOf(r) });
  let scores: unknown;
  if (runs.length === 1) {
    put('predictions.jsonl', predictionsJsonl(runs[0]!.run));
    scores = scoresOf(runs[0]!);
    put('report.json', `${JSON.stringify(reportOf(runs[0]!), null, 2)}\n`);
  } else {
    const names = new Set<string>();
    for (const r of runs) { // validate every name before writing anything
      const folder = runFolderName(r.name);
      if (names.has(folder)) throw new MedloraError(`two compared runs share the name "${r.name}"; name them (--compare NAME=DIR)`);
      names.add(folder);
    }
    for (const r of runs) put(join(runFolderName(r.name), 'predictions.jsonl'), predictionsJsonl(r.run));
    scores = { runs: runs.map(scoresOf) };
    put('report.json', `${JSON.stringify({ runs: runs.map(reportOf) }, null, 2)}\n`);
  }
  put('scores.json', `${JSON.stringify(scores, null, 2)}\n`);
  put('report.html', evalHtml(runs, title));
  return { files, scores };
}

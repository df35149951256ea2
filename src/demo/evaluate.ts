// Demo step 4: evaluation. Greedy generation with the ddi-triplets constraint (so every answer parses) on the
// held-out records, prompts built exactly as in training (encodeRecord's prompt part), predictions written as JSONL
// in `medlora score`'s format and scored with the same library call, per model; then the side-by-side table.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { encodeRecord } from '../data/encode.js';
import { writeJsonl } from '../data/jsonl.js';
import type { PromptStyle } from '../data/prompt.js';
import type { MedRecord } from '../data/schema.js';
import { DEFAULT_MATCH } from '../eval/match.js';
import { compareText, writeReport, type NamedRun } from '../eval/report.js';
import { scoreRecords, type PredLine, type ScoreResult } from '../eval/score.js';
import { taskConstraint } from '../generate/constraints/index.js';
import { generateIds, type ConstraintFn, type FinishReason } from '../generate/generate.js';
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import { MedloraError } from '../util/errors.js';

export interface GenerationSettings {
  batch: number;
  maxNewTokens: number;
  /** longest entity / relation text the constraint lets the model write, in bytes */
  maxFieldBytes: number;
}

export interface Prediction {
  id: string;
  output: string;
  finish_reason: FinishReason;
}

export interface PredictOptions {
  style: PromptStyle;
  /** instruction given to every record (the demo model's compact one); default: the task's */
  instruction?: string;
  generation: GenerationSettings;
  onProgress?: (done: number, total: number) => void;
}

/**
 * The ddi-triplets constraint as a generation hook: one automaton state per sequence, advanced by the tokens the
 * sequence generated since the last call; the remaining token budget keeps every answer finishable.
 */
export function triplesConstraint(tok: TextTokenizer, maxNewTokens: number, maxFieldBytes: number): ConstraintFn {
  const c = taskConstraint('ddi-triplets', tok, { maxFieldBytes });
  const states = new Map<number, { state: number; seen: number }>();
  const eos = tok.eosId!;
  return (seq, generated) => {
    let s = states.get(seq);
    if (!s || generated.length < s.seen) s = { state: c.initial(), seen: 0 };
    for (let i = s.seen; i < generated.length; i++) {
      const next = c.advance(s.state, generated[i]!);
      if (next < 0) throw new Error(`constraint: token ${generated[i]} was generated but is not allowed (sequence ${seq})`);
      s.state = next;
    }
    s.seen = generated.length;
    states.set(seq, s);
    const m = c.mask(s.state, maxNewTokens - generated.length);
    const allowed = m.allowed;
    if (eos < allowed.length) allowed[eos] = 0;
    return { allowed, eosAllowed: m.eos };
  };
}

/** Prompt token ids of records, exactly as training encoded them (BOS, template, instruction, input). */
export function promptIds(tok: TextTokenizer, records: MedRecord[], style: PromptStyle, instruction?: string): number[][] {
  return records.map((r) => {
    const e = encodeRecord(instruction ? { ...r, instruction } : r, tok, { style });
    if (!e.ok) throw new MedloraError(`record ${r.id}: cannot build its prompt (${e.reason})`);
    return e.example.input_ids.slice(0, e.example.promptLength);
  });
}

/** Generate answers for records (greedy, constrained). */
export function predict(model: CausalLM, tok: TextTokenizer, records: MedRecord[], o: PredictOptions): Prediction[] {
  if (tok.eosId === undefined) throw new MedloraError('the tokenizer has no EOS token; generation cannot tell where an answer ends');
  model.train(false);
  const g = o.generation;
  const prompts = promptIds(tok, records, o.style, o.instruction);
  const out = generateIds(model, prompts, {
    maxNewTokens: g.maxNewTokens, batchSize: g.batch, eosIds: [tok.eosId], padId: tok.padId ?? tok.eosId,
    constraint: triplesConstraint(tok, g.maxNewTokens, g.maxFieldBytes),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  return out.map((r, i) => ({ id: records[i]!.id, output: tok.decode(r.ids, { skipSpecialTokens: true }), finish_reason: r.finishReason }));
}

/** Score predictions against the records (strict matching, as `medlora score` by default). */
export function scorePredictions(records: MedRecord[], preds: Prediction[]): ScoreResult {
  const map = new Map<string, { value: PredLine; where: string }>(preds.map((p, i) => [p.id, { value: { id: p.id, output: p.output }, where: `prediction ${i + 1}` }]));
  return { ...scoreRecords('ddi-triplets', records, map, DEFAULT_MATCH), gold: undefined, pred: undefined };
}

export interface EvaluatedModel {
  name: string;
  predictions: string;
  report: { html: string; json: string };
  result: ScoreResult;
  seconds: number;
}

/** Predict, write eval/<name>/predictions.jsonl + report.html/json, and score. */
export async function evaluateModel(name: string, model: CausalLM, tok: TextTokenizer, records: MedRecord[], dir: string, o: PredictOptions): Promise<EvaluatedModel> {
  const t0 = Date.now();
  const preds = predict(model, tok, records, o);
  const sub = join(dir, name);
  mkdirSync(sub, { recursive: true });
  const file = join(sub, 'predictions.jsonl');
  await writeJsonl(file, preds);
  const result = { ...scorePredictions(records, preds), pred: file };
  const report = writeReport(sub, result);
  return { name, predictions: file, report, result, seconds: (Date.now() - t0) / 1000 };
}

/** The side-by-side table (base vs fine-tuned). */
export function comparison(runs: EvaluatedModel[]): string {
  const named: NamedRun[] = runs.map((r) => ({ name: r.name, result: r.result }));
  return compareText(named);
}

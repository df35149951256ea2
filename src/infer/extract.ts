// The library call behind `medlora extract` (and the serve layer): structured results for raw texts, each entity with
// its source span(s) in the text. Prompts and generation are exactly those of evaluation (generate-answers.ts).
//
// SPANS: offsets are in Unicode code points of the input text (Python's str indexing: text[start:end]), end exclusive.
// An entity is looked up case-insensitively after the same normalisation as relaxed matching (whitespace runs = one
// space, Unicode dashes = "-", trailing . , ; : dropped from the entity), as a plain substring (no word-boundary rule).
// `span` is the first occurrence or null when the entity is not in the text (e.g. a paraphrase or a hallucination);
// `occurrences` lists every non-overlapping occurrence.
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import { getStructuredTask } from '../data/tasks/index.js';
import { MedloraError } from '../util/errors.js';
import { RELAXED_NORMALIZE, normalizeText } from './normalize.js';
import { parseOutput, type StructuredTask } from './parse.js';
import {
  DEFAULT_GENERATION,
  encodeForEval,
  generateAnswers,
  rankSlice,
  textRecord,
  type EvalParallel,
  type GenerationSettings,
  type GenerationTiming,
  type ProgressFn,
} from './generate-answers.js';
import type { FinishReason } from '../generate/generate.js';

export interface ExtractInput {
  id: string;
  text: string;
}

export interface EntitySpan {
  /** what the entity is in this task's answer, e.g. "chemical", "drug", "adverse_effect" */
  role: string;
  text: string;
  /** [start, end) of the first occurrence, in code points; null when not found */
  span: [number, number] | null;
  occurrences: Array<[number, number]>;
}

export interface ExtractResult {
  id: string;
  task: StructuredTask;
  /** the raw generated text */
  output: string;
  /** the parsed answer in the task's gold shape */
  result: unknown;
  entities: EntitySpan[];
  unparsed: string[];
  /** eos, length (maxNewTokens reached) or max_positions (the model's position limit reached) */
  finish_reason: FinishReason;
  /** the answer was cut (finish_reason length or max_positions) rather than ended by the model */
  truncated: boolean;
}

/** Lower-cased, whitespace-collapsed, dash-mapped text with, per output character, its code-point index in the source. */
function normalizedWithMap(text: string): { norm: string; origin: number[] } {
  // the caller's code points are kept as they are (no NFC): offsets refer to them
  const cps = Array.from(text);
  let norm = '';
  const origin: number[] = [];
  let lastSpace = false;
  cps.forEach((ch, i) => {
    if (/[\s\u00A0]/.test(ch)) {
      if (!lastSpace) {
        norm += ' ';
        origin.push(i);
      }
      lastSpace = true;
      return;
    }
    lastSpace = false;
    const c = /[\u2010-\u2015\u2212\uFE58\uFE63\uFF0D]/.test(ch) ? '-' : ch.toLowerCase();
    for (const u of Array.from(c)) {
      norm += u;
      origin.push(i);
    }
  });
  return { norm, origin };
}

/** Every non-overlapping occurrence of `entity` in `text` as [start, end) code-point offsets (see the file header). */
export function findSpans(text: string, entity: string): Array<[number, number]> {
  const needle = normalizeText(entity, { ...RELAXED_NORMALIZE, lowercase: true });
  if (needle === '') return [];
  const { norm, origin } = normalizedWithMap(text);
  // search in code-point space so positions map one to one onto `origin`
  const hay = Array.from(norm);
  const need = Array.from(needle);
  const nLen = need.length;
  const out: Array<[number, number]> = [];
  for (let i = 0; i + nLen <= hay.length;) {
    let ok = true;
    for (let j = 0; j < nLen; j++)
      if (hay[i + j] !== need[j]) {
        ok = false;
        break;
      }
    if (!ok) {
      i++;
      continue;
    }
    out.push([origin[i]!, origin[i + nLen - 1]! + 1]);
    i += nLen;
  }
  return out;
}

/** The entities of a parsed answer with their roles (relations are not entities; duplicates are listed once). */
export function entitiesOf(task: StructuredTask, result: unknown): Array<{ role: string; text: string }> {
  return getStructuredTask(task).entities(result);
}

export interface ExtractOptions extends Partial<GenerationSettings> {
  onProgress?: ProgressFn;
  /** several ranks: each generates its share (whole batches), every rank gets all results in input order */
  parallel?: EvalParallel;
  /** per task, the instruction training used when it is not the task's built-in one (an adapter's contract) */
  instructions?: Record<string, string>;
}

/** Extract structured results from texts with a model (+ adapter already applied) and its tokenizer. */
export function extract(
  model: CausalLM,
  tok: TextTokenizer,
  task: StructuredTask,
  inputs: ExtractInput[],
  o: ExtractOptions = {},
): { results: ExtractResult[]; timing: GenerationTiming } {
  if (inputs.length === 0) throw new MedloraError('extract: no input texts');
  const s: GenerationSettings = { ...DEFAULT_GENERATION };
  for (const [k, v] of Object.entries(o))
    if (v !== undefined && k !== 'onProgress' && k !== 'instructions' && k !== 'parallel')
      (s as unknown as Record<string, unknown>)[k] = v;
  const instruction = o.instructions?.[task];
  (model as { train?: (on: boolean) => unknown }).train?.(false);
  const prompts = inputs.map((x) => {
    const e = encodeForEval(
      { ...textRecord(task, x.id, x.text), ...(instruction !== undefined ? { instruction } : {}) },
      tok,
      s,
    );
    return { id: x.id, ids: e.input_ids.slice(0, e.promptLength) };
  });
  const { lo, hi } = rankSlice(prompts.length, s.batchSize, o.parallel);
  const gen = generateAnswers(
    model,
    tok,
    task,
    prompts.slice(lo, hi),
    { ...s, seed: s.seed + lo / s.batchSize },
    o.onProgress,
  );
  const { timing } = gen;
  const answers = o.parallel ? o.parallel.gatherLists(gen.answers).flat() : gen.answers;
  const results = answers.map((a, i): ExtractResult => {
    const p = parseOutput(task, a.output);
    const text = inputs[i]!.text;
    const entities = entitiesOf(task, p.items).map((e) => {
      const occurrences = findSpans(text, e.text);
      return { ...e, span: occurrences[0] ?? null, occurrences };
    });
    return {
      id: a.id,
      task,
      output: a.output,
      result: p.items,
      entities,
      unparsed: p.unparsed,
      finish_reason: a.finishReason,
      truncated: a.truncated,
    };
  });
  return { results, timing };
}

// The library call behind `medlora score` (and later `medlora eval`): reads gold records and predictions (JSONL),
// pairs them by id, parses raw outputs, matches and aggregates. Errors name the file and line.
import { readFileSync } from 'node:fs';
import type { MedRecord, TaskName } from '../data/schema.js';
import { getStructuredTask, getTask } from '../data/tasks/index.js';
import { MedloraError } from '../util/errors.js';
import {
  type Item,
  type MatchOptions,
  type FilteredItem,
  DEFAULT_MATCH,
  matchItems,
  poolItems,
  toItems,
} from './match.js';
import { type Aggregate, aggregate } from './metrics.js';
import { type StructuredTask, parseOutput, validateStructured } from '../infer/parse.js';

/** One line of a predictions file: raw model text, or an already structured answer. */
export interface PredLine {
  id: string;
  output?: string;
  pred?: unknown;
}

export interface RecordScore {
  id: string;
  input: string;
  tp: Item[];
  fp: Item[];
  fn: Item[];
  filtered: FilteredItem[];
  unparsed: string[];
  /** no prediction line had this id (scored as an empty prediction) */
  missing: boolean;
}

export interface ScoreResult {
  task: StructuredTask;
  /** everything that changes the numbers, recorded so a report can be reproduced */
  options: MatchOptions;
  gold: string | undefined;
  pred: string | undefined;
  counts: {
    goldRecords: number;
    predLines: number;
    /** gold ids with no prediction (scored as empty predictions) */
    missingIds: string[];
    /** prediction ids with no gold record (ignored) */
    extraIds: string[];
    /** gold records of other tasks in the gold file (ignored) */
    otherTaskRecords: number;
    unparsedLines: number;
    recordsWithUnparsed: number;
    filteredItems: number;
  };
  metrics: Aggregate;
  records: RecordScore[];
}

/**
 * Minimal JSONL reader (one JSON value per non-blank line) with file:line errors. Kept small on purpose: replaceable
 * by the data engineer's src/data/jsonl.ts.
 */
export function readJsonl(path: string): Array<{ line: number; value: unknown }> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MedloraError(`cannot read ${path}: ${(e as Error).message}`);
  }
  const out: Array<{ line: number; value: unknown }> = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (!l) continue;
    try {
      out.push({ line: i + 1, value: JSON.parse(l) });
    } catch (e) {
      throw new MedloraError(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
  }
  return out;
}

function idOf(v: unknown, where: string): string {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new MedloraError(`${where}: expected a JSON object`);
  const id = (v as { id?: unknown }).id;
  if (typeof id === 'string' && id) return id;
  if (typeof id === 'number') return String(id);
  throw new MedloraError(`${where}: missing "id" (a string or number)`);
}

export function assertStructuredTask(task: string): StructuredTask {
  if (!getTask(task).structured) {
    throw new MedloraError(`task "${task}" is free text: it is scored by loss / perplexity, not by medlora score`);
  }
  return task;
}

/** Read gold records of `task` from a canonical-record JSONL file. */
export function readGold(task: StructuredTask, path: string): { records: MedRecord[]; otherTask: number } {
  const records: MedRecord[] = [];
  const seen = new Set<string>();
  let otherTask = 0;
  for (const { line, value } of readJsonl(path)) {
    const where = `${path}:${line}`;
    const id = idOf(value, where);
    const r = value as Partial<MedRecord>;
    if (typeof r.task !== 'string') throw new MedloraError(`${where}: missing "task"`);
    if (r.task !== task) {
      otherTask++;
      continue;
    }
    if (seen.has(id)) throw new MedloraError(`${where}: duplicate id "${id}"`);
    seen.add(id);
    if (r.gold === undefined) throw new MedloraError(`${where}: missing "gold"`);
    // gold goes through the same shape check as structured predictions
    const gold = validateStructured(task, r.gold, `${where} (gold)`).items;
    records.push({ id, task: task as TaskName, input: typeof r.input === 'string' ? r.input : '', gold });
  }
  return { records, otherTask };
}

/** Read predictions: {"id", "output": text} or {"id", "pred": structured}. */
export function readPredictions(task: StructuredTask, path: string): Map<string, { value: PredLine; where: string }> {
  const out = new Map<string, { value: PredLine; where: string }>();
  for (const { line, value } of readJsonl(path)) {
    const where = `${path}:${line}`;
    const id = idOf(value, where);
    const v = value as PredLine;
    if (v.output === undefined && v.pred === undefined) {
      throw new MedloraError(`${where}: needs "output" (raw model text) or "pred" (structured ${task} answer)`);
    }
    if (v.output !== undefined && typeof v.output !== 'string')
      throw new MedloraError(`${where}: "output" must be a string`);
    if (out.has(id)) throw new MedloraError(`${where}: duplicate id "${id}"`);
    out.set(id, { value: { ...v, id }, where });
  }
  return out;
}

/** Score in-memory gold records against predictions keyed by id. */
export function scoreRecords(
  task: StructuredTask,
  gold: MedRecord[],
  preds: Map<string, { value: PredLine; where: string }>,
  options: MatchOptions = DEFAULT_MATCH,
): Omit<ScoreResult, 'gold' | 'pred'> {
  const records: RecordScore[] = [];
  const missingIds: string[] = [];
  let unparsedLines = 0,
    recordsWithUnparsed = 0,
    filteredItems = 0;
  for (const g of gold) {
    if (options.filters.grounding && !g.input) {
      throw new MedloraError(
        `gold record "${g.id}" has no "input" text, so its predictions cannot be grounded (turn the grounding filter off)`,
      );
    }
    const p = preds.get(g.id);
    let value: unknown = getStructuredTask(task).empty();
    let unparsed: string[] = [];
    if (!p) missingIds.push(g.id);
    else if (p.value.output !== undefined) ({ items: value, unparsed } = parseOutput(task, p.value.output));
    else value = validateStructured(task, p.value.pred, p.where).items;
    const pooled = options.metric === 'pooled-set';
    let goldItems = toItems(task, g.gold, options, g.input, false).items;
    const predSet = toItems(task, value, options, g.input, true);
    let predItems = predSet.items;
    if (pooled) {
      goldItems = poolItems(goldItems);
      predItems = poolItems(predItems);
    }
    const m = matchItems(goldItems, predItems);
    unparsedLines += unparsed.length;
    if (unparsed.length) recordsWithUnparsed++;
    filteredItems += predSet.filtered.length;
    records.push({ id: g.id, input: g.input, ...m, filtered: predSet.filtered, unparsed, missing: !p });
  }
  const goldIds = new Set(gold.map((g) => g.id));
  const extraIds = [...preds.keys()].filter((id) => !goldIds.has(id));
  return {
    task,
    options,
    counts: {
      goldRecords: gold.length,
      predLines: preds.size,
      missingIds,
      extraIds,
      otherTaskRecords: 0,
      unparsedLines,
      recordsWithUnparsed,
      filteredItems,
    },
    metrics: aggregate(records),
    records,
  };
}

/** Score files: the whole of `medlora score`. */
export function scoreFiles(
  task: string,
  goldPath: string,
  predPath: string,
  options: MatchOptions = DEFAULT_MATCH,
): ScoreResult {
  const t = assertStructuredTask(task);
  const { records, otherTask } = readGold(t, goldPath);
  if (records.length === 0) {
    throw new MedloraError(
      `${goldPath}: no gold records with "task": "${t}"${otherTask ? ` (${otherTask} records of other tasks)` : ''}`,
    );
  }
  const preds = readPredictions(t, predPath);
  const r = scoreRecords(t, records, preds, options);
  return { ...r, gold: goldPath, pred: predPath, counts: { ...r.counts, otherTaskRecords: otherTask } };
}

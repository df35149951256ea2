// Matching a record's predicted items against its gold items: turns each task's structured answer into typed,
// comparable keys (strict or normalised, ordered or unordered pairs) and pairs them up with multiset semantics.
import { getStructuredTask, type Task } from '../data/tasks/index.js';
import { MedloraError } from '../util/errors.js';
import {
  type FilterOptions,
  type NormalizeOptions,
  NO_FILTERS,
  RELAXED_NORMALIZE,
  STRICT_NORMALIZE,
  filterReason,
  normalizeText,
} from '../infer/normalize.js';

/** One comparable unit: its type (entity type, relation, or ade-email field) and its match key. */
export interface Item {
  type: string;
  key: string;
  /** human-readable form for error reports */
  text: string;
}

export interface MatchOptions {
  /** strict: exact strings (trimmed); relaxed: normalised with `normalize` */
  mode: 'strict' | 'relaxed';
  normalize: NormalizeOptions;
  /** applied to predictions only: gold is never filtered */
  filters: FilterOptions;
  /**
   * Which relations are unordered pairs: 'default' (per task, see DEFAULT_SYMMETRIC), 'all', 'none', or an
   * explicit list of relation names (compared after normalisation). Pair tasks have one implicit relation,
   * so for them only 'all' makes pairs unordered.
   */
  symmetric: 'default' | 'all' | 'none' | string[];
  /**
   * 'typed' (default): items keep their type (entity type, relation, ade-email field) and are matched as multisets.
   * 'pooled-set': each record's items are pooled into ONE set of strings, types ignored and duplicates counted once,
   * then TP = |gold & pred|, FP = |pred - gold|, FN = |gold - pred| per record, summed over records. For ade-email this
   * is the adverse-event recipe's own metric (architkaila/Fine-Tuning-LLMs-for-Medical-Entity-Extraction,
   * scripts/evaluate.py: parse_entities() puts drug_name and every adverse event into one set; a drug name that is
   * also an event counts once). An empty drug name is "no answer" and is not an item (as in typed scoring).
   */
  metric?: MetricName;
}

export type MetricName = 'typed' | 'pooled-set';
export const METRIC_NAMES: readonly MetricName[] = ['typed', 'pooled-set'];

/** A metric name, checked (`where` names the field or flag in the error). */
export function parseMetric(s: string | undefined, where = 'metric'): MetricName {
  const v = s ?? 'typed';
  if (!(METRIC_NAMES as readonly string[]).includes(v))
    throw new MedloraError(`${where} must be one of ${METRIC_NAMES.join(', ')}, got "${v}"`);
  return v as MetricName;
}

/** The single type every item gets under the pooled-set metric. */
export const POOLED_TYPE = 'entity';

/** Pool items for the pooled-set metric: one type, each key once (first occurrence kept). */
export function poolItems(items: Item[]): Item[] {
  const seen = new Set<string>();
  const out: Item[] = [];
  for (const i of items) {
    if (seen.has(i.key)) continue;
    seen.add(i.key);
    out.push({ type: POOLED_TYPE, key: i.key, text: i.text });
  }
  return out;
}

export const DEFAULT_MATCH: MatchOptions = {
  mode: 'strict',
  normalize: RELAXED_NORMALIZE,
  filters: NO_FILTERS,
  symmetric: 'default',
};

const SEP = '\u0001';

export interface FilteredItem {
  text: string;
  reason: string;
}

export interface ItemSet {
  items: Item[];
  filtered: FilteredItem[];
}

function normOf(o: MatchOptions): NormalizeOptions {
  return o.mode === 'strict' ? STRICT_NORMALIZE : o.normalize;
}

function isSymmetric(task: Task, relationKey: string | undefined, o: MatchOptions): boolean {
  if (o.symmetric === 'all') return true;
  if (o.symmetric === 'none') return false;
  const n = normOf(o);
  // per-task defaults live in each task module (e.g. the four DDI 2013 types are unordered)
  const list = o.symmetric === 'default' ? task.symmetricRelations : o.symmetric;
  if (relationKey === undefined) return false;
  // relation names are compared case-insensitively even in strict mode: the list is configuration, not output
  return list.some((r) => normalizeText(r, n).toLowerCase() === relationKey.toLowerCase());
}

/**
 * Typed, keyed items for one record's answer, from its task's match units (src/data/tasks). `source` (the record's
 * input) is used for grounding; with `isPred` false (gold) no filter is applied. A unit with a relation is typed by
 * the normalised relation, its two names an ordered or unordered pair; other units are typed by their task-given type
 * (entity type, ade-email field, JSON path of a schema task), two names a pair (unordered only with symmetric "all").
 */
export function toItems(task: string, value: unknown, o: MatchOptions, source: string, isPred: boolean): ItemSet {
  const t = getStructuredTask(task);
  const n = normOf(o);
  const items: Item[] = [];
  const filtered: FilteredItem[] = [];
  const f = isPred ? o.filters : NO_FILTERS;
  const reject = (names: string[], text: string): boolean => {
    for (const name of names) {
      const why = filterReason(name, source, f, n);
      if (why) {
        filtered.push({ text, reason: `${JSON.stringify(name)}: ${why}` });
        return true;
      }
    }
    return false;
  };
  const namesKey = (names: string[], sym: boolean): string => {
    const ks = names.map((x) => normalizeText(x, n));
    if (sym && ks.length === 2 && ks[1]! < ks[0]!) ks.reverse();
    return ks.join(SEP);
  };
  for (const u of t.units(value)) {
    if (reject(u.names, u.text)) continue;
    if (u.relation !== undefined) {
      const rel = normalizeText(u.relation, n);
      items.push({ type: rel, key: `${rel}${SEP}${namesKey(u.names, isSymmetric(t, rel, o))}`, text: u.text });
    } else {
      const key = namesKey(u.names, o.symmetric === 'all');
      items.push({ type: u.type, key: u.literal === undefined ? key : `${key}${SEP}${u.literal}`, text: u.text });
    }
  }
  return { items, filtered };
}

export interface MatchResult {
  tp: Item[];
  fp: Item[];
  fn: Item[];
}

/**
 * Multiset matching: each gold item can be matched by at most one predicted item with the same type and key.
 * TP = sum over keys of min(#gold, #pred); extra predicted copies are FPs and unmatched gold copies are FNs.
 * Why multisets: a model that repeats a right answer must not gain precision from the repeats (set semantics would
 * hide them), and a gold list that legitimately repeats an item (two distinct pairs that normalise alike) must be
 * found twice to get full recall.
 */
export function matchItems(gold: Item[], pred: Item[]): MatchResult {
  const left = new Map<string, Item[]>();
  for (const g of gold) {
    const k = `${g.type}${SEP}${SEP}${g.key}`;
    const arr = left.get(k);
    if (arr) arr.push(g);
    else left.set(k, [g]);
  }
  const tp: Item[] = [];
  const fp: Item[] = [];
  for (const p of pred) {
    const arr = left.get(`${p.type}${SEP}${SEP}${p.key}`);
    if (arr && arr.length > 0) {
      arr.shift();
      tp.push(p);
    } else fp.push(p);
  }
  const fn = [...left.values()].flat();
  return { tp, fp, fn };
}

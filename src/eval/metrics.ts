// Precision / recall / F1 from TP/FP/FN counts: per type, micro (pooled) and macro (mean over types) averages, and a
// per-record average. The 0/0 conventions are defined once here (see `ratio`).
import type { MatchResult } from './match.js';

export interface Counts {
  tp: number;
  fp: number;
  fn: number;
}
export interface PRF {
  precision: number;
  recall: number;
  f1: number;
}
export type Scored = Counts & PRF;

/**
 * n/d, with the 0/0 cases defined explicitly:
 * - nothing to find and nothing predicted (tp = fp = fn = 0): precision = recall = F1 = 1 (a perfect answer; this is
 *   what makes an empty gold + empty prediction record count as correct);
 * - otherwise a 0 denominator gives 0: no predictions at all against non-empty gold is precision 0 (not "vacuously
 *   1"), and predictions against empty gold are recall 0, so neither degenerate strategy can score well.
 */
function ratio(n: number, d: number, allEmpty: boolean): number {
  if (d > 0) return n / d;
  return allEmpty ? 1 : 0;
}

export function prf(c: Counts): PRF {
  const allEmpty = c.tp === 0 && c.fp === 0 && c.fn === 0;
  const precision = ratio(c.tp, c.tp + c.fp, allEmpty);
  const recall = ratio(c.tp, c.tp + c.fn, allEmpty);
  // F1 = 2TP / (2TP + FP + FN), the same as the harmonic mean of P and R whenever that is defined
  const f1 = ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, allEmpty);
  return { precision, recall, f1 };
}

export function scored(c: Counts): Scored {
  return { tp: c.tp, fp: c.fp, fn: c.fn, ...prf(c) };
}

export interface Aggregate {
  /** per entity type / relation / ade-email field, sorted by name */
  perType: Array<{ type: string } & Scored>;
  /** micro average: TP/FP/FN pooled over every item of every record and type, then P/R/F1 */
  micro: Scored;
  /** macro average: unweighted mean of the per-type P, R and F1 (types seen in gold or predictions) */
  macro: PRF & { types: number };
  /** per-record average: mean over records of each record's own P/R/F1 (empty gold + empty prediction = 1) */
  perRecord: PRF & { records: number };
  /** records whose prediction matched gold exactly (no FP, no FN) */
  exact: { records: number; correct: number; rate: number };
}

function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Aggregate the per-record match results. */
export function aggregate(records: MatchResult[]): Aggregate {
  const byType = new Map<string, Counts>();
  const bump = (type: string, k: keyof Counts): void => {
    const c = byType.get(type) ?? { tp: 0, fp: 0, fn: 0 };
    c[k]++;
    byType.set(type, c);
  };
  const rec: PRF[] = [];
  let correct = 0;
  for (const r of records) {
    for (const i of r.tp) bump(i.type, 'tp');
    for (const i of r.fp) bump(i.type, 'fp');
    for (const i of r.fn) bump(i.type, 'fn');
    rec.push(prf({ tp: r.tp.length, fp: r.fp.length, fn: r.fn.length }));
    if (r.fp.length === 0 && r.fn.length === 0) correct++;
  }
  const perType = [...byType.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([type, c]) => ({ type, ...scored(c) }));
  const pooled = perType.reduce((a, t) => ({ tp: a.tp + t.tp, fp: a.fp + t.fp, fn: a.fn + t.fn }), {
    tp: 0,
    fp: 0,
    fn: 0,
  });
  // no type at all (every record empty on both sides) is a perfect result, consistent with `ratio`
  const macro =
    perType.length === 0
      ? { precision: 1, recall: 1, f1: 1, types: 0 }
      : {
          precision: mean(perType.map((t) => t.precision)),
          recall: mean(perType.map((t) => t.recall)),
          f1: mean(perType.map((t) => t.f1)),
          types: perType.length,
        };
  return {
    perType,
    micro: scored(pooled),
    macro,
    perRecord: {
      precision: mean(rec.map((r) => r.precision)),
      recall: mean(rec.map((r) => r.recall)),
      f1: mean(rec.map((r) => r.f1)),
      records: rec.length,
    },
    exact: { records: records.length, correct, rate: records.length ? correct / records.length : 0 },
  };
}

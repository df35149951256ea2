// Scoring reports: a terminal table, report.json and a self-contained report.html (no external assets) with per-type
// P/R/F1 and false positives / false negatives per type with example texts; plus a side-by-side comparison of runs.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ScoreResult } from './score.js';
import { MedloraError } from '../util/errors.js';

/** What a comparison needs from a run: a ScoreResult, or the same fields read back from a report.json. */
export type RunSummary = Pick<ScoreResult, 'task' | 'options' | 'metrics' | 'counts'>;

const f3 = (x: number): string => x.toFixed(3);

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

/** A short description of the options that changed the numbers. */
export function describeOptions(r: RunSummary): string {
  const o = r.options;
  const parts = [
    `${o.metric === 'pooled-set' ? 'metric pooled-set (one set of strings per record, types ignored); ' : ''}matching ${o.mode}`,
  ];
  if (o.mode === 'relaxed') {
    const on = Object.entries(o.normalize)
      .filter(([, v]) => v)
      .map(([k]) => k);
    parts.push(`normalise: ${on.length ? on.join(', ') : 'nothing'}`);
  }
  parts.push(`symmetric: ${Array.isArray(o.symmetric) ? o.symmetric.join(',') || 'none' : o.symmetric}`);
  const f = o.filters;
  const filters = [
    f.grounding ? 'grounding' : '',
    f.stopList.length ? `stop-list (${f.stopList.length})` : '',
    f.minLength > 0 ? `min length ${f.minLength}` : '',
  ].filter(Boolean);
  parts.push(`filters: ${filters.length ? filters.join(', ') : 'none'}`);
  return parts.join('; ');
}

/** The score table's rows shared by the text and HTML reports: per type, micro, macro (per-record mean added by each). */
function scoreRows(m: ScoreResult['metrics']): string[][] {
  const rows: string[][] = m.perType.map((t) => [
    t.type,
    String(t.tp),
    String(t.fp),
    String(t.fn),
    f3(t.precision),
    f3(t.recall),
    f3(t.f1),
  ]);
  rows.push([
    'micro (pooled counts)',
    String(m.micro.tp),
    String(m.micro.fp),
    String(m.micro.fn),
    f3(m.micro.precision),
    f3(m.micro.recall),
    f3(m.micro.f1),
  ]);
  rows.push([
    `macro (mean of ${m.macro.types} types)`,
    '',
    '',
    '',
    f3(m.macro.precision),
    f3(m.macro.recall),
    f3(m.macro.f1),
  ]);
  return rows;
}

/** Terminal report for one scoring run. */
export function renderText(r: ScoreResult): string {
  const m = r.metrics;
  const rows = scoreRows(m);
  rows.push([
    `per-record mean (${m.perRecord.records})`,
    '',
    '',
    '',
    f3(m.perRecord.precision),
    f3(m.perRecord.recall),
    f3(m.perRecord.f1),
  ]);
  const c = r.counts;
  const notes = [
    `task ${r.task}: ${c.goldRecords} gold records, ${c.predLines} prediction lines; ${describeOptions(r)}`,
    `exact match: ${m.exact.correct}/${m.exact.records} records (${f3(m.exact.rate)})`,
  ];
  if (c.missingIds.length)
    notes.push(
      `missing predictions (scored as empty): ${c.missingIds.length} (${c.missingIds.slice(0, 5).join(', ')}${c.missingIds.length > 5 ? ', ...' : ''})`,
    );
  if (c.extraIds.length)
    notes.push(
      `predictions with no gold record (ignored): ${c.extraIds.length} (${c.extraIds.slice(0, 5).join(', ')}${c.extraIds.length > 5 ? ', ...' : ''})`,
    );
  if (c.otherTaskRecords) notes.push(`gold records of other tasks (ignored): ${c.otherTaskRecords}`);
  if (c.unparsedLines) notes.push(`unparsed output: ${c.unparsedLines} lines in ${c.recordsWithUnparsed} records`);
  if (c.filteredItems) notes.push(`predicted items removed by filters: ${c.filteredItems}`);
  return `${table(['type', 'TP', 'FP', 'FN', 'P', 'R', 'F1'], rows)}\n\n${notes.join('\n')}`;
}

/** The JSON report: options, counts, metrics and per-record errors (not the TPs, to keep it small). */
export function reportJson(r: ScoreResult): unknown {
  return {
    task: r.task,
    gold: r.gold,
    pred: r.pred,
    options: r.options,
    counts: r.counts,
    metrics: r.metrics,
    definitions: {
      micro: 'TP/FP/FN pooled over all items of all records and types, then P/R/F1',
      macro: 'unweighted mean of per-type P, R, F1 over types seen in gold or predictions',
      perRecord: "mean over records of each record's P/R/F1",
      zeroDivision: 'tp=fp=fn=0 gives P=R=F1=1; any other 0 denominator gives 0',
      duplicates: 'multiset matching: TP = min(#gold, #pred) per key',
    },
    errorsByType: errorsByType(r),
    errors: r.records
      .filter((x) => x.fp.length || x.fn.length || x.unparsed.length || x.filtered.length)
      .map((x) => ({
        id: x.id,
        missing: x.missing,
        fp: x.fp.map((i) => ({ type: i.type, text: i.text })),
        fn: x.fn.map((i) => ({ type: i.type, text: i.text })),
        unparsed: x.unparsed,
        filtered: x.filtered,
      })),
  };
}

/** False positives and false negatives grouped by type, each with its record id (for the eval error report). */
export function errorsByType(
  r: ScoreResult,
): Record<string, { fp: Array<{ id: string; text: string }>; fn: Array<{ id: string; text: string }> }> {
  const out: Record<string, { fp: Array<{ id: string; text: string }>; fn: Array<{ id: string; text: string }> }> = {};
  for (const rec of r.records) {
    for (const kind of ['fp', 'fn'] as const) {
      for (const i of rec[kind]) (out[i.type] ??= { fp: [], fn: [] })[kind].push({ id: rec.id, text: i.text });
    }
  }
  return out;
}

/** Read a run back from its report.json (for --compare), checking the fields a comparison uses. */
export function readReportJson(path: string): RunSummary {
  let j: Partial<RunSummary>;
  try {
    j = JSON.parse(readFileSync(path, 'utf8')) as Partial<RunSummary>;
  } catch (e) {
    throw new MedloraError(`${path}: cannot read a report.json (${(e as Error).message})`);
  }
  if (typeof j.task !== 'string' || !j.metrics?.micro || !Array.isArray(j.metrics.perType) || !j.options || !j.counts) {
    throw new MedloraError(`${path}: not a medlora score report (expected "task", "options", "counts" and "metrics")`);
  }
  return j as RunSummary;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function htmlTable(head: string[], rows: string[][]): string {
  return (
    `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>` +
    rows
      .map((r) => `<tr>${r.map((c, i) => `<td${i ? ' class="n"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`)
      .join('') +
    '</tbody></table>'
  );
}

const STYLE =
  'body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}' +
  'td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}' +
  'details{margin:.3em 0}.fp{color:#a00}.fn{color:#05a}blockquote{color:#555;margin:.2em 1em;white-space:pre-wrap}' +
  'code{background:#f4f4f4}';

/** Self-contained HTML report. `examplesPerType` bounds the FP/FN examples listed per type. */
export function renderHtml(r: ScoreResult, examplesPerType = 20): string {
  const m = r.metrics;
  const rows = scoreRows(m);
  rows.push([`per-record mean`, '', '', '', f3(m.perRecord.precision), f3(m.perRecord.recall), f3(m.perRecord.f1)]);
  const sections: string[] = [];
  for (const t of m.perType) {
    for (const kind of ['fp', 'fn'] as const) {
      const hits = r.records.flatMap((rec) => rec[kind].filter((i) => i.type === t.type).map((i) => ({ rec, i })));
      if (!hits.length) continue;
      const label = kind === 'fp' ? 'false positives' : 'false negatives';
      const items = hits
        .slice(0, examplesPerType)
        .map(
          ({ rec, i }) =>
            `<li><span class="${kind}">${escapeHtml(i.text)}</span> <small>(${escapeHtml(rec.id)}${rec.missing ? ', no prediction' : ''})</small>` +
            `<blockquote>${escapeHtml(rec.input.length > 400 ? `${rec.input.slice(0, 400)}…` : rec.input)}</blockquote></li>`,
        )
        .join('');
      sections.push(
        `<details><summary>${escapeHtml(t.type)}: ${hits.length} ${label}${hits.length > examplesPerType ? ` (first ${examplesPerType})` : ''}</summary><ul>${items}</ul></details>`,
      );
    }
  }
  const unparsed = r.records
    .filter((x) => x.unparsed.length)
    .slice(0, 50)
    .map((x) => `<li>${escapeHtml(x.id)}: <code>${escapeHtml(x.unparsed.join(' ⏎ ').slice(0, 300))}</code></li>`)
    .join('');
  const c = r.counts;
  return `<!doctype html><html><head><meta charset="utf-8"><title>medlora score: ${escapeHtml(r.task)}</title><style>${STYLE}</style></head><body>
<h1>${escapeHtml(r.task)}</h1>
<p>${c.goldRecords} gold records (${escapeHtml(r.gold ?? '')}), ${c.predLines} prediction lines (${escapeHtml(r.pred ?? '')}).<br>${escapeHtml(describeOptions(r))}.<br>
Exact match: ${m.exact.correct}/${m.exact.records} records. Missing predictions: ${c.missingIds.length}; extra: ${c.extraIds.length}; unparsed lines: ${c.unparsedLines}; filtered items: ${c.filteredItems}.</p>
${htmlTable(['type', 'TP', 'FP', 'FN', 'P', 'R', 'F1'], rows)}
<p><small>micro: counts pooled over all items, then P/R/F1. macro: unweighted mean of per-type P, R, F1. per-record: mean of each record's P/R/F1. tp=fp=fn=0 counts as 1; any other 0 denominator as 0. Duplicates: multiset matching.</small></p>
<h2>Errors by type</h2>${sections.join('\n') || '<p>none</p>'}
${unparsed ? `<h2>Unparsed output</h2><ul>${unparsed}</ul>` : ''}
<script type="application/json" id="options">${escapeHtml(JSON.stringify(r.options))}</script>
</body></html>
`;
}

/** Write report.html and report.json into `dir`; returns their paths. */
export function writeReport(dir: string, r: ScoreResult): { html: string; json: string } {
  mkdirSync(dir, { recursive: true });
  const html = join(dir, 'report.html');
  const json = join(dir, 'report.json');
  writeFileSync(html, renderHtml(r));
  writeFileSync(json, `${JSON.stringify(reportJson(r), null, 2)}\n`);
  return { html, json };
}

export interface NamedRun {
  name: string;
  result: RunSummary;
}

function compareRows(runs: NamedRun[]): { head: string[]; rows: string[][] } {
  const tasks = new Set(runs.map((r) => r.result.task));
  if (tasks.size > 1) throw new MedloraError(`cannot compare runs of different tasks (${[...tasks].join(', ')})`);
  const types = [...new Set(runs.flatMap((r) => r.result.metrics.perType.map((t) => t.type)))].sort();
  const head = ['F1', ...runs.map((r) => r.name)];
  const rows: string[][] = [];
  for (const t of types) {
    rows.push([
      t,
      ...runs.map((r) => {
        const x = r.result.metrics.perType.find((p) => p.type === t);
        return x ? f3(x.f1) : '-';
      }),
    ]);
  }
  rows.push(['micro F1', ...runs.map((r) => f3(r.result.metrics.micro.f1))]);
  rows.push(['micro P', ...runs.map((r) => f3(r.result.metrics.micro.precision))]);
  rows.push(['micro R', ...runs.map((r) => f3(r.result.metrics.micro.recall))]);
  rows.push(['macro F1', ...runs.map((r) => f3(r.result.metrics.macro.f1))]);
  rows.push(['exact match', ...runs.map((r) => f3(r.result.metrics.exact.rate))]);
  rows.push(['unparsed lines', ...runs.map((r) => String(r.result.counts.unparsedLines))]);
  return { head, rows };
}

/** Several runs side by side (same task), as terminal text. */
export function compareText(runs: NamedRun[]): string {
  const { head, rows } = compareRows(runs);
  return table(head, rows);
}

/** Several runs side by side, as a self-contained HTML page. */
export function compareHtml(runs: NamedRun[]): string {
  const { head, rows } = compareRows(runs);
  const opts = runs
    .map(
      (r) => `<li>${escapeHtml(r.name)}: ${escapeHtml(r.result.task)}; ${escapeHtml(describeOptions(r.result))}</li>`,
    )
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>medlora comparison</title><style>${STYLE}</style></head><body>
<h1>Comparison</h1>${htmlTable(head, rows)}<ul>${opts}</ul></body></html>
`;
}

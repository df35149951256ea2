// `data stats`: records per task and per relation / entity type, and the length distribution of prompt + target
// (tokens with a tokenizer, else characters) with percentiles, a suggested max_length, a terminal histogram and a
// self-contained HTML page with an inline SVG histogram (no network, no scripts).
import type { MedRecord } from './schema.js';
import { getTask, labelsOf } from './tasks.js';

/** Whether a record's gold is its task's empty answer (rendered "none" by list tasks). */
const isEmptyAnswer = (r: MedRecord): boolean => {
  const t = getTask(r.task);
  return t.structured && t.isEmpty(r.gold);
};

export interface LengthStats {
  unit: 'tokens' | 'chars';
  count: number;
  min: number;
  mean: number;
  max: number;
  /** nearest-rank percentiles */
  percentiles: Record<'p50' | 'p90' | 'p95' | 'p99', number>;
  /** smallest multiple of `multiple` covering p99 (tokens only) */
  suggestedMaxLength: number | null;
  multiple: number;
  histogram: Array<{ from: number; to: number; count: number }>;
}

export interface DataStats {
  records: number;
  byTask: Record<string, number>;
  /** task -> label -> gold items */
  byLabel: Record<string, Record<string, number>>;
  /** task -> records whose gold is empty (rendered "none") */
  emptyAnswers: Record<string, number>;
  lengths?: LengthStats;
}

/** Nearest-rank percentile: the smallest value with at least p% of the data at or below it. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

/** Round a bin width up to 1, 2 or 5 x 10^k ("nice" numbers), at least 1. */
function niceWidth(raw: number): number {
  if (raw <= 1) return 1;
  const e = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * e >= raw) return m * e;
  return 10 * e;
}

export function histogram(values: number[], bins = 20): LengthStats['histogram'] {
  if (values.length === 0) return [];
  const max = Math.max(...values);
  const w = niceWidth((max + 1) / bins);
  const n = Math.floor(max / w) + 1;
  const out = Array.from({ length: n }, (_, i) => ({ from: i * w, to: (i + 1) * w, count: 0 }));
  for (const v of values) out[Math.floor(v / w)]!.count++;
  return out;
}

export function lengthStats(lengths: number[], unit: 'tokens' | 'chars', multiple = 8): LengthStats {
  const s = [...lengths].sort((a, b) => a - b);
  const p99 = percentile(s, 99);
  return {
    unit,
    count: s.length,
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
    mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length),
    percentiles: { p50: percentile(s, 50), p90: percentile(s, 90), p95: percentile(s, 95), p99 },
    suggestedMaxLength: unit === 'tokens' && s.length ? Math.ceil(p99 / multiple) * multiple : null,
    multiple,
    histogram: histogram(s),
  };
}

export function countStats(records: MedRecord[]): DataStats {
  const st: DataStats = { records: records.length, byTask: {}, byLabel: {}, emptyAnswers: {} };
  for (const r of records) {
    st.byTask[r.task] = (st.byTask[r.task] ?? 0) + 1;
    const ls = labelsOf(r);
    const m = (st.byLabel[r.task] ??= {});
    for (const l of ls) m[l] = (m[l] ?? 0) + 1;
    if (isEmptyAnswer(r)) st.emptyAnswers[r.task] = (st.emptyAnswers[r.task] ?? 0) + 1;
  }
  return st;
}

export function renderTextHistogram(l: LengthStats, width = 40): string {
  const peak = Math.max(1, ...l.histogram.map((b) => b.count));
  const lab = Math.max(...l.histogram.map((b) => `${b.from}-${b.to - 1}`.length));
  return l.histogram
    .map(
      (b) =>
        `  ${`${b.from}-${b.to - 1}`.padStart(lab)} | ${'█'.repeat(Math.round((b.count / peak) * width)).padEnd(width)} ${b.count}`,
    )
    .join('\n');
}

export function renderStatsText(st: DataStats, file: string): string {
  const out: string[] = [`${file}: ${st.records} records`];
  for (const [t, n] of Object.entries(st.byTask).sort()) {
    out.push(`  ${t}: ${n} records${st.emptyAnswers[t] ? ` (${st.emptyAnswers[t]} with an empty answer)` : ''}`);
    const labels = Object.entries(st.byLabel[t] ?? {}).sort((a, b) => b[1] - a[1]);
    for (const [l, c] of labels.slice(0, 25)) out.push(`    ${String(c).padStart(7)}  ${l}`);
    if (labels.length > 25) out.push(`    ... ${labels.length - 25} more labels (see --json)`);
  }
  const l = st.lengths;
  if (l) {
    out.push(
      '',
      `prompt + target length (${l.unit}): min ${l.min}, mean ${l.mean.toFixed(1)}, p50 ${l.percentiles.p50}, p90 ${l.percentiles.p90}, p95 ${l.percentiles.p95}, p99 ${l.percentiles.p99}, max ${l.max}`,
    );
    out.push(renderTextHistogram(l));
    if (l.suggestedMaxLength !== null)
      out.push(
        `suggested max_length: ${l.suggestedMaxLength} (smallest multiple of ${l.multiple} covering the 99th percentile)`,
      );
    else out.push('(give --tokenizer DIR for token lengths and a suggested max_length)');
  }
  return out.join('\n');
}

const esc = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A self-contained HTML page: summary table + inline SVG histogram with p50/p99/suggested max_length markers. */
export function renderStatsHtml(st: DataStats, file: string): string {
  const l = st.lengths;
  let svg = '';
  if (l && l.histogram.length) {
    const W = 720,
      H = 300,
      pad = 40;
    const peak = Math.max(1, ...l.histogram.map((b) => b.count));
    const xMax = l.histogram[l.histogram.length - 1]!.to;
    const x = (v: number): number => pad + ((W - 2 * pad) * v) / xMax;
    const y = (c: number): number => H - pad - ((H - 2 * pad) * c) / peak;
    const bars = l.histogram
      .map(
        (b) =>
          `<rect x="${x(b.from).toFixed(1)}" y="${y(b.count).toFixed(1)}" width="${Math.max(1, x(b.to) - x(b.from) - 1).toFixed(1)}" height="${(H - pad - y(b.count)).toFixed(1)}" fill="#4a7fb5"><title>${b.from}-${b.to - 1}: ${b.count}</title></rect>`,
      )
      .join('');
    const mark = (v: number, label: string, color: string): string =>
      v <= xMax
        ? `<line x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="${pad - 10}" y2="${H - pad}" stroke="${color}" stroke-dasharray="4 3"/><text x="${x(v).toFixed(1)}" y="${pad - 14}" font-size="11" text-anchor="middle" fill="${color}">${esc(label)}</text>`
        : '';
    const ticks = l.histogram
      .filter((_, i) => i % Math.ceil(l.histogram.length / 10) === 0)
      .map(
        (b) =>
          `<text x="${x(b.from).toFixed(1)}" y="${H - pad + 14}" font-size="10" text-anchor="middle">${b.from}</text>`,
      )
      .join('');
    svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">` +
      `<line x1="${pad}" y1="${H - pad}" x2="${W - pad}" y2="${H - pad}" stroke="#333"/>${bars}${ticks}` +
      `<text x="${W / 2}" y="${H - 6}" font-size="12" text-anchor="middle">prompt + target length (${l.unit})</text>` +
      `<text x="${pad - 4}" y="${pad}" font-size="10" text-anchor="end">${peak}</text>` +
      mark(l.percentiles.p50, `p50 ${l.percentiles.p50}`, '#2a8a2a') +
      mark(l.percentiles.p99, `p99 ${l.percentiles.p99}`, '#c05000') +
      (l.suggestedMaxLength !== null
        ? mark(l.suggestedMaxLength, `max_length ${l.suggestedMaxLength}`, '#b00020')
        : '') +
      '</svg>';
  }
  const rows = Object.entries(st.byTask)
    .map(
      ([t, n]) =>
        `<tr><td>${esc(t)}</td><td>${n}</td><td>${Object.entries(st.byLabel[t] ?? {})
          .sort((a, b) => b[1] - a[1])
          .slice(0, 30)
          .map(([k, v]) => `${esc(k)}: ${v}`)
          .join('<br>')}</td></tr>`,
    )
    .join('');
  const lp = l
    ? `<p>${l.unit}: min ${l.min}, mean ${l.mean.toFixed(1)}, p50 ${l.percentiles.p50}, p90 ${l.percentiles.p90}, p95 ${l.percentiles.p95}, p99 ${l.percentiles.p99}, max ${l.max}` +
      `${l.suggestedMaxLength !== null ? `; suggested max_length <b>${l.suggestedMaxLength}</b> (smallest multiple of ${l.multiple} covering p99)` : ''}</p>`
    : '';
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>medlora data stats: ${esc(file)}</title>` +
    `<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}</style></head>` +
    `<body><h1>${esc(file)}</h1><p>${st.records} records</p><table><tr><th>task</th><th>records</th><th>labels</th></tr>${rows}</table>${lp}${svg}</body></html>\n`
  );
}

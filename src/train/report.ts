// report.html for a run: self-contained (inline SVG, no scripts or network) charts of train loss, validation loss,
// learning rate, epoch and gradient norm over steps, plus a summary table — the figures a W&B dashboard would show.
import { writeFileSync } from 'node:fs';
import {
  isEval,
  isGenerateEval,
  type EvalRecord,
  type GenerateEvalRecord,
  type MetricRecord,
  type TrainRecord,
} from './metrics.js';

export interface Series {
  name: string;
  color: string;
  points: Array<[number, number]>;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : Number(v.toPrecision(4)).toString();
}

/** One line chart as an SVG string: axes with 5 ticks each, a polyline (and dots when few points) per series. */
export function lineChart(title: string, series: Series[], w = 540, h = 260): string {
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const L = 64,
    R = 14,
    T = 30,
    B = 36;
  if (pts.length === 0) {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><text x="${w / 2}" y="${h / 2}" text-anchor="middle" font-size="13">${esc(title)}: no data</text></svg>`;
  }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (x0 === x1) {
    x0 -= 1;
    x1 += 1;
  }
  if (y0 === y1) {
    const d = Math.abs(y0) * 0.1 || 1;
    y0 -= d;
    y1 += d;
  }
  const pad = (y1 - y0) * 0.05;
  // keep non-negative quantities (rates, epochs, norms) from showing negative ticks
  y0 = y0 >= 0 ? Math.max(0, y0 - pad) : y0 - pad;
  y1 += pad;
  const intX = pts.every(([x]) => Number.isInteger(x));
  const sx = (x: number): number => L + ((x - x0) / (x1 - x0)) * (w - L - R);
  const sy = (y: number): number => T + (1 - (y - y0) / (y1 - y0)) * (h - T - B);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="11">`,
    `<text x="${L}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${L}" y="${T}" width="${w - L - R}" height="${h - T - B}" fill="none" stroke="#999"/>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4,
      xv = x0 + ((x1 - x0) * i) / 4;
    parts.push(
      `<line x1="${L}" x2="${w - R}" y1="${sy(yv)}" y2="${sy(yv)}" stroke="#eee"/>`,
      `<text x="${L - 4}" y="${sy(yv) + 4}" text-anchor="end">${fmt(yv)}</text>`,
      `<text x="${sx(xv)}" y="${h - B + 14}" text-anchor="middle">${fmt(intX ? Math.round(xv) : Math.round(xv * 100) / 100)}</text>`,
    );
  }
  parts.push(`<text x="${(L + w - R) / 2}" y="${h - 6}" text-anchor="middle">step</text>`);
  series.forEach((s, i) => {
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (p.length === 0) return;
    parts.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`,
    );
    if (p.length <= 60)
      for (const [x, y] of p)
        parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    parts.push(
      `<text x="${w - R - 4}" y="${T + 14 + 14 * i}" text-anchor="end" fill="${s.color}">${esc(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('');
}

export interface ReportSummary {
  title: string;
  /** rows of the summary table */
  facts: Array<[string, string]>;
  config: unknown;
}

/** The whole HTML page for a run's metrics. */
export function renderReport(records: readonly MetricRecord[], s: ReportSummary): string {
  const train = records.filter((r): r is TrainRecord => !isEval(r) && !isGenerateEval(r));
  const evals = records.filter((r): r is EvalRecord => isEval(r));
  const gens = records.filter((r): r is GenerateEvalRecord => isGenerateEval(r));
  const charts = [
    lineChart('Loss', [
      { name: 'train loss', color: '#1f77b4', points: train.map((r) => [r.step, r.loss]) },
      { name: 'validation loss', color: '#d62728', points: evals.map((r) => [r.step, r.eval_loss]) },
    ]),
    // generation-based scores (training.eval_generate_steps), next to the loss
    ...(gens.length
      ? [
          lineChart(`Generation F1 (validation sample of ${gens[gens.length - 1]!.gen_samples})`, [
            { name: 'F1 (micro)', color: '#d62728', points: gens.map((r) => [r.step, r.gen_f1]) },
            { name: 'precision', color: '#1f77b4', points: gens.map((r) => [r.step, r.gen_precision]) },
            { name: 'recall', color: '#2ca02c', points: gens.map((r) => [r.step, r.gen_recall]) },
            { name: 'parse rate', color: '#7f7f7f', points: gens.map((r) => [r.step, r.gen_parse_rate]) },
          ]),
        ]
      : []),
    lineChart('Validation loss', [
      { name: 'eval_loss', color: '#d62728', points: evals.map((r) => [r.step, r.eval_loss]) },
    ]),
    lineChart('Learning rate', [
      { name: 'learning_rate', color: '#2ca02c', points: train.map((r) => [r.step, r.learning_rate]) },
    ]),
    lineChart('Gradient norm (before clipping)', [
      { name: 'grad_norm', color: '#9467bd', points: train.map((r) => [r.step, r.grad_norm]) },
    ]),
    lineChart('Epoch', [{ name: 'epoch', color: '#8c564b', points: train.map((r) => [r.step, r.epoch]) }]),
    lineChart('Throughput (tokens/s)', [
      { name: 'tokens_per_second', color: '#ff7f0e', points: train.map((r) => [r.step, r.tokens_per_second]) },
    ]),
  ];
  const rows = s.facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(s.title)}</title><style>
body{font-family:sans-serif;margin:20px;color:#222}table{border-collapse:collapse;margin-bottom:16px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid svg{border:1px solid #eee;background:#fff}pre{background:#f6f6f6;padding:8px;font-size:12px;max-height:400px;overflow:auto}
</style></head><body><h1>${esc(s.title)}</h1><table>${rows}</table><div class="grid">${charts.join('\n')}</div>
<h2>Resolved config</h2><pre>${esc(JSON.stringify(s.config, null, 2))}</pre></body></html>
`;
}

export function writeReport(file: string, records: readonly MetricRecord[], s: ReportSummary): void {
  writeFileSync(file, renderReport(records, s));
}

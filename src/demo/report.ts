// Demo step 5b: the run's report.html: one self-contained page (inline SVG, no scripts, no network) with what was
// built, the base vs fine-tuned scores side by side, both training curves, the example extractions, and links to
// every file the demo wrote.
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { escapeHtml } from '../eval/report.js';
import type { ScoreResult } from '../eval/score.js';
import {
  isEval,
  isGenerateEval,
  type EvalRecord,
  type GenerateEvalRecord,
  type MetricRecord,
  type TrainRecord,
} from '../train/metrics.js';
import { lineChart } from '../train/report.js';
import type { ExtractionExample } from './extract.js';

export interface ScoredRun {
  name: string;
  result: ScoreResult;
  /** test loss of the gold answers (token-weighted cross-entropy), when computed */
  loss?: number | null;
}

export interface DemoReport {
  runDir: string;
  facts: Array<[string, string]>;
  runs: ScoredRun[];
  /** named metric logs, e.g. base pretraining and LoRA fine-tune */
  curves: Array<{ title: string; records: readonly MetricRecord[] }>;
  examples: ExtractionExample[];
  /** [label, absolute path] of the files to link */
  files: Array<[string, string]>;
}

const f3 = (x: number): string => x.toFixed(3);

/** The score rows shown side by side (also used for the terminal table). */
export function scoreRows(runs: ScoredRun[]): { head: string[]; rows: string[][] } {
  const m = (f: (r: ScoreResult) => string): string[] => runs.map((r) => f(r.result));
  return {
    head: ['held-out test', ...runs.map((r) => r.name)],
    rows: [
      ['precision (micro)', ...m((r) => f3(r.metrics.micro.precision))],
      ['recall (micro)', ...m((r) => f3(r.metrics.micro.recall))],
      ['F1 (micro)', ...m((r) => f3(r.metrics.micro.f1))],
      ['F1 (macro over relations)', ...m((r) => f3(r.metrics.macro.f1))],
      ['exact-match records', ...m((r) => `${r.metrics.exact.correct}/${r.metrics.exact.records}`)],
      ['TP / FP / FN', ...m((r) => `${r.metrics.micro.tp} / ${r.metrics.micro.fp} / ${r.metrics.micro.fn}`)],
      ...(runs.some((r) => typeof r.loss === 'number')
        ? [['test loss (gold answers)', ...runs.map((r) => (typeof r.loss === 'number' ? r.loss.toFixed(3) : '-'))]]
        : []),
    ],
  };
}

/** A plain-text table (first column left-aligned, the others right-aligned). */
export function textTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('   ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('   '), ...rows.map(line)].join('\n');
}

function htmlTable(head: string[], rows: string[][], cls = ''): string {
  return (
    `<table${cls ? ` class="${cls}"` : ''}><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>` +
    rows
      .map(
        (r) =>
          `<tr>${r.map((c, i) => (i === 0 ? `<th>${escapeHtml(c)}</th>` : `<td>${escapeHtml(c)}</td>`)).join('')}</tr>`,
      )
      .join('') +
    '</table>'
  );
}

/** The loss chart of a metrics log, and the generation F1 chart when the log holds generation evaluations. */
function curve(title: string, records: readonly MetricRecord[]): string {
  const train = records.filter((r): r is TrainRecord => !isEval(r) && !isGenerateEval(r));
  const evals = records.filter((r): r is EvalRecord => isEval(r));
  const gens = records.filter((r): r is GenerateEvalRecord => isGenerateEval(r));
  const loss = lineChart(`${title}: loss`, [
    { name: 'train loss', color: '#1f77b4', points: train.map((r) => [r.step, r.loss]) },
    { name: 'validation loss', color: '#d62728', points: evals.map((r) => [r.step, r.eval_loss]) },
  ]);
  if (gens.length === 0) return loss;
  return (
    loss +
    lineChart(`${title}: triplet F1 (${gens[0]!.gen_samples} validation records)`, [
      {
        name: 'F1 of generated answers',
        color: '#2ca02c',
        points: gens.map((r): [number, number] => [r.step, r.gen_f1]),
      },
    ])
  );
}

export function renderDemoReport(r: DemoReport): string {
  const { head, rows } = scoreRows(r.runs);
  const facts = r.facts.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('');
  const examples = r.examples
    .map(
      (x) =>
        `<div class="ex ${x.correct ? 'ok' : 'bad'}"><div class="s">${escapeHtml(x.sentence)}</div>` +
        (x.triplets.length
          ? x.triplets
              .map(
                (t) =>
                  `<div class="t">&lt;<b>${escapeHtml(t.head)}</b>, ${escapeHtml(t.relation)}, <b>${escapeHtml(t.tail)}</b>&gt;</div>`,
              )
              .join('')
          : '<div class="t">(nothing extracted)</div>') +
        `<div class="v">${x.correct ? '✓ matches the gold answer' : `✗ gold: ${x.gold.map((t) => escapeHtml(`<${t.head}, ${t.relation}, ${t.tail}>`)).join(' ')}`}</div></div>`,
    )
    .join('\n');
  const files = r.files
    .map(([label, p]) => {
      const rel = relative(r.runDir, p) || '.';
      return `<li>${escapeHtml(label)}: <a href="${escapeHtml(rel)}">${escapeHtml(rel)}</a></li>`;
    })
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>medlora demo report</title><style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:1150px}h1{margin-bottom:4px}.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:8px 0 18px}th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;font-size:14px}
table.scores td{text-align:right;font-variant-numeric:tabular-nums;min-width:90px}table.scores tr:nth-child(4) td{font-weight:bold}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid svg{border:1px solid #eee;background:#fff}
.ex{border-left:4px solid #2ca02c;padding:6px 10px;margin:8px 0;background:#f7fbf7}.ex.bad{border-color:#d62728;background:#fdf6f6}
.ex .s{font-style:italic;margin-bottom:4px}.ex .t{font-family:monospace;font-size:13px;overflow-wrap:anywhere}.ex .v{color:#555;font-size:12px;margin-top:4px}
</style></head><body><h1>medlora demo</h1><p class="sub">DrugBank-style drug–drug interaction triplets: a small Llama, pretrained as a language model, then LoRA fine-tuned on ddi-triplets.</p>
<h2>Base vs fine-tuned on the held-out split</h2>${htmlTable(head, rows, 'scores')}
<p>Strict matching of whole triplets &lt;drug1, relation, drug2&gt; (the same scoring as <code>medlora score</code>); held-out sentences are about drug pairs that never occur in training.
The base model was only trained to continue text: it has never seen the answer format, so even with format-constrained decoding it answers <code>none</code> or wrong triplets; what it learns from the LoRA fine-tune is the whole difference. Full evaluation (test loss, parse rate, errors by relation): <a href="eval/report.html">eval/report.html</a>.</p>
<h2>Extractions by the fine-tuned model</h2>${examples}
<h2>Training curves</h2><div class="grid">${r.curves.map((c) => curve(c.title, c.records)).join('\n')}</div>
<h2>The run</h2><table>${facts}</table>
<h2>Files</h2><ul>${files}</ul></body></html>
`;
}

export function writeDemoReport(file: string, r: DemoReport): void {
  writeFileSync(file, renderDemoReport(r));
}

// Eval output files and text: predictions.jsonl, scores.json, report.json, report.html, and the terminal text; one
// report (a side-by-side table) for all compared runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { describeOptions, escapeHtml, renderHtml, renderText, reportJson } from './report.js';
import { runScores, type EvalRun, type RunScores } from './evaluate.js';

/** A run with its display name and what produced it. */
export interface NamedEvalRun {
  name: string;
  model: string;
  adapter: string | null;
  /** where the model computed (scores.json reports it beside the timing) */
  device?: string;
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
    r.loss
      ? `test loss ${f4(r.loss.loss)}  perplexity ${f4(r.loss.perplexity)}  (${r.loss.tokens} answer tokens)`
      : 'test loss: not computed',
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
  const table = `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${i ? ' class="n"' : ''}>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
  const runsList = runs
    .map(
      (r) =>
        `<li><b>${escapeHtml(r.name)}</b>: model ${escapeHtml(r.model)}${r.adapter ? `, adapter ${escapeHtml(r.adapter)}` : ' (no adapter)'}` +
        `${r.device ? ` on ${escapeHtml(r.device)}` : ''}; ` +
        `${escapeHtml(runFacts(r.run).join('; '))}</li>`,
    )
    .join('');
  const s = runs[0]!.run.settings;
  const settings =
    `max_new_tokens ${s.maxNewTokens}, batch ${s.batchSize}, ${s.temperature > 0 ? `temperature ${s.temperature}, seed ${s.seed}` : 'greedy'}, ` +
    `repetition penalty ${s.repetitionPenalty}, ${s.constrain ? 'constrained decoding' : 'unconstrained'}, prompt ${s.promptStyle}` +
    `${s.maxLength !== undefined ? `, max_length ${s.maxLength}` : ''}`;
  const sections = runs
    .map(
      (r) =>
        `<section><h2>${escapeHtml(r.name)}</h2>${bodyOf(renderHtml(r.run.score)).replace(/<h1>[\s\S]*?<\/h1>/, '')}</section>`,
    )
    .join('\n');
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
export function writeEvalOutputs(
  dir: string,
  runs: NamedEvalRun[],
  title = 'medlora eval',
): { files: string[]; scores: unknown } {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, text: string): void => {
    const p = join(dir, name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
    files.push(p);
  };
  const scoresOf = (r: NamedEvalRun): RunScores =>
    runScores(r.name, r.run, { model: r.model, adapter: r.adapter, ...(r.device ? { device: r.device } : {}) });
  const reportOf = (r: NamedEvalRun): Record<string, unknown> => ({
    ...(reportJson(r.run.score) as Record<string, unknown>),
    name: r.name,
    eval: scoresOf(r),
  });
  let scores: unknown;
  if (runs.length === 1) {
    put('predictions.jsonl', predictionsJsonl(runs[0]!.run));
    scores = scoresOf(runs[0]!);
    put('report.json', `${JSON.stringify(reportOf(runs[0]!), null, 2)}\n`);
  } else {
    const names = new Set<string>();
    for (const r of runs) {
      // validate every name before writing anything
      const folder = runFolderName(r.name);
      if (names.has(folder))
        throw new MedloraError(`two compared runs share the name "${r.name}"; give each run its own name`);
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

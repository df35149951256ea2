// `medlora score`: score a predictions JSONL against gold records (glue over src/eval/score.ts and report.ts).
import { readFileSync } from 'node:fs';
import { type CommandSpec, bool, list, num, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { DEFAULT_STOP_LIST, RELAXED_NORMALIZE, type NormalizeOptions } from '../../infer/normalize.js';
import { parseMetric, type MatchOptions } from '../../eval/match.js';
import { scoreFiles } from '../../eval/score.js';
import { renderText, reportJson, writeReport } from '../../eval/report.js';

function stopList(arg: string | undefined, extra: string[]): string[] {
  const base = arg === undefined ? [] : arg === 'default' ? [...DEFAULT_STOP_LIST] : readStopFile(arg);
  return [...base, ...extra];
}

function readStopFile(path: string): string[] {
  try {
    return readFileSync(path, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
  } catch (e) {
    throw new MedloraError(`--stop-list: cannot read ${path}: ${(e as Error).message}`);
  }
}

export const scoreCommand: CommandSpec = {
  name: 'score',
  summary: 'Score predictions (JSONL) against gold records: P/R/F1 per type, micro and macro',
  details: [
    'Predictions: one JSON object per line, {"id": ..., "output": "raw model text"} or {"id": ..., "pred": <structured>}.',
    'Gold: canonical records ({"id", "task", "input", "gold"}); ids missing from the predictions count as empty answers.',
    'Matching is strict (exact strings) unless --relaxed; normalisation switches apply to relaxed matching.',
    'micro = counts pooled over all items; macro = mean of per-type scores; per-record = mean of record scores.',
    "--metric pooled-set: each record's answer strings (ade-email: drug_name and adverse_events) form ONE set, types",
    "ignored, duplicates once; TP/FP/FN per record are summed (the adverse-event recipe's scripts/evaluate.py).",
  ].join('\n'),
  options: {
    task: {
      type: 'string',
      value: 'TASK',
      required: true,
      description: 'task of the gold records (ddi-triplets, chemicals, ..., ade-email)',
    },
    gold: { type: 'string', value: 'FILE', required: true, description: 'gold records JSONL' },
    pred: { type: 'string', value: 'FILE', required: true, description: 'predictions JSONL' },
    json: { type: 'boolean', description: 'print the result as JSON' },
    relaxed: { type: 'boolean', description: 'match after normalisation (lowercase, whitespace, dashes, punctuation)' },
    lowercase: { type: 'boolean', default: true, description: 'relaxed: case-fold (--no-lowercase to keep case)' },
    whitespace: { type: 'boolean', default: true, description: 'relaxed: collapse whitespace' },
    dashes: { type: 'boolean', default: true, description: 'relaxed: map Unicode dashes to "-" (hyphens are kept)' },
    punctuation: { type: 'boolean', default: true, description: 'relaxed: drop trailing . , ; : and quotes' },
    symmetric: { type: 'boolean', description: 'treat every relation / pair as unordered' },
    'symmetric-relations': {
      type: 'string',
      value: 'LIST',
      description: 'comma-separated unordered relations (default: per task; DDI 2013 types for ddi-triplets)',
    },
    directional: { type: 'boolean', description: 'treat every relation as ordered (overrides the per-task default)' },
    ground: { type: 'boolean', description: "drop predicted names not found in the record's input text" },
    'stop-list': {
      type: 'string',
      value: 'FILE|default',
      description: 'drop predicted names on this list (one per line; "default" = built-in generic terms)',
    },
    'stop-word': { type: 'string', value: 'WORD', multiple: true, description: 'add one stop-list entry (repeatable)' },
    'min-length': {
      type: 'number',
      value: 'N',
      default: 0,
      description: 'drop predicted names shorter than N characters',
    },
    report: { type: 'string', value: 'DIR', description: 'also write report.html and report.json into DIR' },
    metric: {
      type: 'string',
      value: 'typed|pooled-set',
      default: 'typed',
      description:
        "typed: per entity type / relation; pooled-set: each record's strings as one set (the adverse-event recipe's evaluate.py)",
    },
  },
  run(args) {
    const normalize: NormalizeOptions = {
      ...RELAXED_NORMALIZE,
      lowercase: args.options.lowercase !== false,
      whitespace: args.options.whitespace !== false,
      dashes: args.options.dashes !== false,
      punctuation: args.options.punctuation !== false,
    };
    const minLength = num(args, 'min-length') ?? 0;
    if (!Number.isInteger(minLength) || minLength < 0)
      throw new MedloraError(`--min-length expects a whole number >= 0, got ${minLength}`);
    if (bool(args, 'symmetric') && bool(args, 'directional'))
      throw new MedloraError('--symmetric and --directional contradict each other');
    const rels = str(args, 'symmetric-relations');
    const symmetric: MatchOptions['symmetric'] = bool(args, 'symmetric')
      ? 'all'
      : bool(args, 'directional')
        ? 'none'
        : rels !== undefined
          ? rels
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : 'default';
    const options: MatchOptions = {
      mode: bool(args, 'relaxed') ? 'relaxed' : 'strict',
      normalize,
      filters: {
        grounding: bool(args, 'ground'),
        stopList: stopList(str(args, 'stop-list'), list(args, 'stop-word')),
        minLength,
      },
      symmetric,
      metric: parseMetric(str(args, 'metric'), '--metric'),
    };
    const result = scoreFiles(str(args, 'task')!, str(args, 'gold')!, str(args, 'pred')!, options);
    const dir = str(args, 'report');
    const written = dir ? writeReport(dir, result) : undefined;
    if (bool(args, 'json')) {
      console.log(JSON.stringify({ ...(reportJson(result) as object), ...(written ? { report: written } : {}) }));
    } else {
      console.log(renderText(result));
      if (written) console.log(`\nreport: ${written.html}\n        ${written.json}`);
    }
    return 0;
  },
};

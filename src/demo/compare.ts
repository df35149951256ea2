// `medlora demo --methods lora,dora,adapter_v2`: the demo's fine-tune once per fine-tuning method on the same base,
// data and budget, each scored on the held-out split; prints seed 002's kind of table (method, trainable parameters,
// precision, recall, F1, training time) and writes methods.json. The methods are reached only through the seam
// (config finetuning + loadAnyAdapter).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAnyAdapter, METHOD_NAMES } from '../adapt/methods/index.js';
import { loadModel } from '../model/load.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { MedRecord } from '../data/schema.js';
import { evaluateModel } from '../eval/run-eval.js';
import type { GenerationSettings } from '../infer/generate-answers.js';
import { fieldError } from '../util/errors.js';
import { fmtTime } from '../util/progress.js';
import { finetune, type FinetuneOptions } from './finetune.js';
import { textTable } from './report.js';

export interface MethodRow {
  method: string;
  trainable_params: number;
  precision: number;
  recall: number;
  f1: number;
  train_seconds: number;
  steps: number;
  adapter: string;
}

/** Parse "lora,dora,adapter_v2"; unknown names are an error naming the known ones. */
export function parseMethods(list: string): string[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !(METHOD_NAMES as readonly string[]).includes(n));
  if (!names.length || bad.length)
    throw fieldError(
      'methods',
      `methods: ${bad.length ? `unknown ${bad.join(', ')}` : 'empty'} (known: ${METHOD_NAMES.join(', ')})`,
    );
  return [...new Set(names)];
}

export async function compareMethods(
  methods: string[],
  ft: FinetuneOptions,
  o: {
    tok: TextTokenizer;
    test: MedRecord[];
    gen: Partial<GenerationSettings>;
    json: boolean;
    quiet: boolean;
    say: (text: string, event?: Record<string, unknown>) => void;
  },
): Promise<MethodRow[]> {
  const rows: MethodRow[] = [];
  for (const [i, method] of methods.entries()) {
    const runDir = join(ft.runDir, 'methods', method);
    o.say(`[3/5] (${i + 1}/${methods.length}) ${method} fine-tune on ddi-triplets -> ${runDir}/`, {
      event: 'step',
      step: 'method-start',
      method,
    });
    const t0 = Date.now();
    const f = await finetune({ ...ft, runDir, method }, { json: o.json, quiet: o.quiet });
    const trainSeconds = (Date.now() - t0) / 1000;
    const model = loadModel(ft.model);
    try {
      loadAnyAdapter(model, f.adapter);
      const run = evaluateModel(model, o.tok, o.test, { ...o.gen, loss: false });
      const m = run.score.metrics.micro;
      rows.push({
        method,
        trainable_params: f.result.trainableParams,
        precision: m.precision,
        recall: m.recall,
        f1: m.f1,
        train_seconds: trainSeconds,
        steps: f.result.steps,
        adapter: f.adapter,
      });
      o.say(`      ${method}: ${f.result.steps} steps in ${fmtTime(trainSeconds)}, F1 ${m.f1.toFixed(3)}`, {
        event: 'method',
        ...rows[rows.length - 1],
      });
    } finally {
      model.dispose();
    }
  }
  const table = textTable(
    ['method', 'trainable params', 'precision', 'recall', 'F1', 'training time'],
    rows.map((r) => [
      r.method,
      r.trainable_params.toLocaleString('en-US'),
      r.precision.toFixed(3),
      r.recall.toFixed(3),
      r.f1.toFixed(3),
      fmtTime(r.train_seconds),
    ]),
  );
  o.say(
    `\n[4/5] held-out test (${o.test.length} records, micro P / R / F1), same base, data and budget per method:\n${table}`,
    { event: 'methods', rows },
  );
  writeFileSync(join(ft.runDir, 'methods.json'), `${JSON.stringify(rows, null, 2)}\n`);
  return rows;
}

// metrics.jsonl: one JSON object per logged update or evaluation, appended and flushed line by line so a killed run
// keeps everything it logged; on resume, records after the checkpoint's step are dropped (they will be redone).
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

export interface TrainRecord {
  step: number;
  epoch: number;
  loss: number;
  learning_rate: number;
  grad_norm: number;
  tokens_per_second: number;
  tokens: number;
}

export interface EvalRecord {
  step: number;
  epoch: number;
  eval_loss: number;
  eval_perplexity: number;
  eval_tokens: number;
}

/** Generation-based scores on a validation sample (eval_generate_steps): micro P/R/F1, parse rate, per-task F1. */
export interface GenerateEvalScores {
  gen_f1: number;
  gen_precision: number;
  gen_recall: number;
  gen_parse_rate: number;
  gen_samples: number;
  /** gen_f1/<task> when the sample holds several tasks */
  [perTask: string]: number;
}

export type GenerateEvalRecord = { step: number; epoch: number } & GenerateEvalScores;

export type MetricRecord = TrainRecord | EvalRecord | GenerateEvalRecord;

export function isEval(r: MetricRecord): r is EvalRecord {
  return 'eval_loss' in r;
}

export function isGenerateEval(r: MetricRecord): r is GenerateEvalRecord {
  return 'gen_f1' in r;
}

export class MetricsLog {
  constructor(readonly file: string) {}

  append(r: MetricRecord): void {
    appendFileSync(this.file, `${JSON.stringify(r)}\n`);
  }

  read(): MetricRecord[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as MetricRecord);
  }

  /** Keep only records up to `step` (resume from a checkpoint taken after that update). */
  truncateAfter(step: number): void {
    if (!existsSync(this.file)) return;
    const keep = this.read().filter((r) => r.step <= step);
    writeFileSync(this.file, keep.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }
}

// The trainer's generation-based evaluation hook (training.eval_generate_steps): a fixed validation sample, scored per
// task and pooled into the gen_* metrics the trainer logs; trainingGenerateEval loads the validation file and tokenizer.
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { MedRecord } from '../data/schema.js';
import { getTask } from '../data/tasks/index.js';
import type { TrainConfig } from '../train/config.js';
import type { GenerateEvalScores } from '../train/metrics.js';
import { MedloraError } from '../util/errors.js';
import { prf } from './metrics.js';
import { evaluateModel, type EvaluateOptions } from './evaluate.js';

/**
 * A validation-sample evaluator for the trainer: the first `samples` structured records (file order, so every call
 * sees the same sample), scored per task; gen_f1/precision/recall are micro averages with counts pooled over the
 * sample's tasks, plus gen_f1/<task> per task when there are several. No loss (the trainer has eval_loss).
 */
export function generationEvaluator(
  model: CausalLM,
  tok: TextTokenizer,
  records: MedRecord[],
  o: EvaluateOptions & { samples: number },
): () => GenerateEvalScores {
  const sample = records.filter((r) => getTask(r.task).structured).slice(0, o.samples);
  if (sample.length === 0)
    throw new MedloraError(
      'eval_generate_steps: the validation data has no records of a structured task to generate answers for',
    );
  const byTask = new Map<string, MedRecord[]>();
  for (const r of sample) byTask.set(r.task, [...(byTask.get(r.task) ?? []), r]);
  return () => {
    let tp = 0,
      fp = 0,
      fn = 0,
      clean = 0;
    const out: Record<string, number> = {};
    for (const [task, recs] of byTask) {
      const run = evaluateModel(model, tok, recs, { ...o, loss: false });
      const m = run.score.metrics.micro;
      tp += m.tp;
      fp += m.fp;
      fn += m.fn;
      clean += run.parse.clean;
      if (byTask.size > 1) out[`gen_f1/${task}`] = m.f1;
    }
    // the same 0/0 conventions as every other score (metrics.ts)
    const m = prf({ tp, fp, fn });
    return {
      gen_f1: m.f1,
      gen_precision: m.precision,
      gen_recall: m.recall,
      gen_parse_rate: clean / sample.length,
      gen_samples: sample.length,
      ...out,
    };
  };
}

/**
 * The evaluator `medlora train` passes to the trainer for training.eval_generate_steps: the validation file's first
 * eval_generate_samples structured records, prompted as in training (data.prompt_style, data.max_length), greedy and
 * constrained, eval_generate_max_new_tokens per answer, per_device_eval_batch_size prompts per batch.
 */
export async function trainingGenerateEval(trained: object, cfg: TrainConfig): Promise<() => GenerateEvalScores> {
  // the trainer's model type is structural (forward + parameters); generation also needs the KV cache of a CausalLM
  if (typeof (trained as Partial<CausalLM>).newCache !== 'function')
    throw new MedloraError('training.eval_generate_steps: the model cannot generate (no KV cache)');
  const model = trained as CausalLM;
  const file = cfg.data.validation;
  if (!file) throw new MedloraError('training.eval_generate_steps needs data.validation (canonical records)');
  const { loadRecords } = await import('../data/jsonl.js');
  const { loadTokenizer } = await import('../tokenize/tokenizer.js');
  let records: MedRecord[];
  try {
    ({ records } = await loadRecords(file));
  } catch (e) {
    throw new MedloraError(
      `training.eval_generate_steps needs data.validation as canonical records ({"id", "task", "input", "gold"}); ${(e as Error).message}`,
    );
  }
  const tok = loadTokenizer(cfg.tokenizer ?? cfg.model);
  const t = cfg.training;
  return generationEvaluator(model, tok, records, {
    samples: t.eval_generate_samples,
    maxNewTokens: t.eval_generate_max_new_tokens,
    batchSize: t.per_device_eval_batch_size,
    promptStyle: cfg.data.prompt_style,
    ...(cfg.data.max_length !== null ? { maxLength: cfg.data.max_length } : {}),
  });
}

// eval/save/logging strategies (HF semantics), metric_for_best_model + load_best_model_at_end with a planted best
// step (the generation evaluator is injected), early stopping as HF's EarlyStoppingCallback, resume_from_checkpoint,
// and the refusals of the run keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed } from '../../src/tensor/index.js';
import { validateConfig, type TrainingSection } from '../../src/train/config.js';
import { listCheckpoints, readTensors } from '../../src/train/checkpoint.js';
import { Trainer, type TrainerOptions } from '../../src/train/trainer.js';
import { ToyLM } from '../../src/train/toy-model.test-util.js';
import type { MetricRecord } from '../../src/train/metrics.js';

const ROWS = [
  { input_ids: [1, 2, 3, 4], labels: [-100, -100, 3, 4] },
  { input_ids: [5, 6, 1], labels: [-100, 6, 1] },
  { input_ids: [2, 2, 6, 5, 0], labels: [-100, 2, 6, 5, 0] },
  { input_ids: [3, 1], labels: [-100, 1] },
  { input_ids: [4, 0, 4], labels: [-100, -100, 4] },
  { input_ids: [6, 5, 4, 3], labels: [-100, 5, 4, 3] },
];
const tmp = (): string => mkdtempSync(join(tmpdir(), 'medlora-best-'));
const cfg = (training: Record<string, unknown>, where = 'test'): TrainingSection =>
  validateConfig({ model: 'm', output_dir: 'o', data: { train: 't' }, training }, where).training;

/** a generation evaluator returning the planted F1 of each call */
function planted(f1s: number[]): { fn: NonNullable<TrainerOptions['generateEval']>; calls: () => number } {
  let i = 0;
  return {
    fn: () => {
      const f = f1s[Math.min(i++, f1s.length - 1)]!;
      return { gen_f1: f, gen_precision: f, gen_recall: f, gen_parse_rate: 1, gen_samples: 2 };
    },
    calls: () => i,
  };
}

/** the adapter writer: the trainable tensors as JSON (what the "final adapter" holds) */
function adapterWriter(m: ToyLM): (dir: string) => void {
  return (dir) => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'w.json'), JSON.stringify(Array.from(m.weight.toFloat32Array())));
  };
}

async function run(dir: string, training: Record<string, unknown>, extra: Partial<TrainerOptions> = {}) {
  manualSeed(11);
  const m = new ToyLM(7, 4);
  const tr = new Trainer({
    model: m,
    training: cfg(training),
    runDir: dir,
    train: ROWS,
    validation: ROWS.slice(0, 2),
    padId: 0,
    saveAdapter: adapterWriter(m),
    ...extra,
  });
  return { res: await tr.train(), m };
}

const records = (dir: string): MetricRecord[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MetricRecord);
const steps = (dir: string, key: string): number[] =>
  records(dir)
    .filter((r) => key in r)
    .map((r) => r.step);
const weightsOf = (ckpt: string): number[] => {
  const t = readTensors(join(ckpt, 'trainable.safetensors')).tensors.weight!;
  const a = Array.from(t.toFloat32Array());
  t.dispose();
  return a;
};

test("load_best_model_at_end + metric_for_best_model gen_f1: the final adapter is the planted best checkpoint's", async () => {
  const d = tmp();
  const g = planted([0.2, 0.9, 0.5, 0.4]); // evaluations at steps 2, 4, 6, 8: best at step 4
  const { res, m } = await run(
    d,
    {
      max_steps: 8,
      per_device_train_batch_size: 2,
      learning_rate: 0.1,
      logging_steps: 1,
      eval_strategy: 'steps',
      eval_steps: 2,
      save_strategy: 'steps',
      save_steps: 2,
      load_best_model_at_end: true,
      metric_for_best_model: 'gen_f1',
    },
    { generateEval: g.fn },
  );
  assert.equal(g.calls(), 4);
  assert.deepEqual(steps(d, 'gen_f1'), [2, 4, 6, 8]);
  assert.deepEqual(steps(d, 'eval_loss'), [2, 4, 6, 8]);
  assert.deepEqual(
    listCheckpoints(d).map((c) => c.step),
    [2, 4, 6, 8],
  );
  const state = JSON.parse(readFileSync(join(d, 'trainer_state.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(state.best_model_checkpoint, join(d, 'checkpoint-4'));
  assert.equal(state.best_metric, 0.9);
  assert.equal(state.best_global_step, 4);
  assert.equal(state.greater_is_better, true); // HF default: the name does not end with "loss"
  assert.equal(state.final_adapter_from, join(d, 'checkpoint-4'));
  assert.equal(res.finalFrom, join(d, 'checkpoint-4'));
  const best = weightsOf(join(d, 'checkpoint-4')),
    last = weightsOf(join(d, 'checkpoint-8'));
  assert.notDeepEqual(best, last, 'the checker can fail: best and last weights differ');
  assert.deepEqual(Array.from(m.weight.toFloat32Array()), best);
  assert.deepEqual(JSON.parse(readFileSync(join(d, 'adapter', 'w.json'), 'utf8')), best);
  // the checkpoint taken at step 8 records the best so far too (a resumed run keeps it)
  assert.equal(
    (JSON.parse(readFileSync(join(d, 'checkpoint-8', 'trainer_state.json'), 'utf8')) as Record<string, unknown>)
      .best_global_step,
    4,
  );
  // without load_best_model_at_end the final adapter is the last weights
  const d2 = tmp();
  const { m: m2 } = await run(
    d2,
    {
      max_steps: 8,
      per_device_train_batch_size: 2,
      learning_rate: 0.1,
      eval_strategy: 'steps',
      eval_steps: 2,
      save_strategy: 'steps',
      save_steps: 2,
      metric_for_best_model: 'gen_f1',
    },
    { generateEval: planted([0.2, 0.9, 0.5, 0.4]).fn },
  );
  assert.deepEqual(Array.from(m2.weight.toFloat32Array()), weightsOf(join(d2, 'checkpoint-8')));
});

test('eval_loss as the metric: lower is better; save_total_limit keeps the best checkpoint', async () => {
  const d = tmp();
  const { res } = await run(d, {
    max_steps: 8,
    per_device_train_batch_size: 2,
    learning_rate: 0.3,
    logging_steps: 1,
    eval_strategy: 'steps',
    eval_steps: 2,
    save_strategy: 'steps',
    save_steps: 2,
    save_total_limit: 1,
    load_best_model_at_end: true,
  });
  const evals = records(d).filter((r): r is MetricRecord & { eval_loss: number } => 'eval_loss' in r);
  const min = evals.reduce((a, r) => (r.eval_loss < a.eval_loss ? r : a));
  assert.equal(res.best.best_global_step, min.step);
  assert.equal(res.best.best_metric, min.eval_loss);
  const kept = listCheckpoints(d).map((c) => c.step);
  assert.ok(kept.includes(min.step), `best checkpoint ${min.step} kept (kept ${kept.join(',')})`);
  assert.ok(kept.length <= 2);
  console.log(
    `  eval losses ${evals.map((r) => `${r.step}:${r.eval_loss.toFixed(4)}`).join(' ')}; best step ${min.step}; kept ${kept.join(',')}`,
  );
  // a planted best in the middle survives save_total_limit 1 (HF keeps it and the newest, for resuming)
  const p = tmp();
  await run(
    p,
    {
      max_steps: 8,
      per_device_train_batch_size: 2,
      eval_strategy: 'steps',
      eval_steps: 2,
      save_strategy: 'steps',
      save_steps: 2,
      save_total_limit: 1,
      load_best_model_at_end: true,
      metric_for_best_model: 'gen_f1',
    },
    { generateEval: planted([0.2, 0.9, 0.5, 0.4]).fn },
  );
  assert.deepEqual(
    listCheckpoints(p).map((c) => c.step),
    [4, 8],
  );
});

test('early stopping: patience 2 stops at the second evaluation without improvement (HF EarlyStoppingCallback)', async () => {
  const d = tmp();
  // evaluations at 2, 4, 6, 8, ...: 0.5 (first: best), 0.6 (better: counter 0), 0.6 (not better: 1), 0.55 (2 -> stop at 8)
  const notes: string[] = [];
  const { res } = await run(
    d,
    {
      max_steps: 20,
      per_device_train_batch_size: 2,
      eval_strategy: 'steps',
      eval_steps: 2,
      save_strategy: 'steps',
      save_steps: 2,
      metric_for_best_model: 'gen_f1',
      early_stopping_patience: 2,
    },
    { generateEval: planted([0.5, 0.6, 0.6, 0.55, 0.9, 0.9]).fn, onMessage: (l) => notes.push(l) },
  );
  assert.equal(res.steps, 8);
  assert.equal(res.earlyStopped, true);
  assert.equal(res.best.best_global_step, 4);
  assert.ok(existsSync(join(d, 'checkpoint-8')), 'the stopping step is still saved (HF saves before the loop stops)');
  assert.ok(
    notes.some((n) => /early stopping at step 8/.test(n)),
    notes.join('\n'),
  );
  const state = JSON.parse(readFileSync(join(d, 'trainer_state.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(state.early_stopped, true);
  // threshold: 0.6 is better than 0.5 but not by more than 0.15 -> counts as no improvement; 0.7 vs best 0.6 likewise
  const d2 = tmp();
  const r2 = await run(
    d2,
    {
      max_steps: 20,
      per_device_train_batch_size: 2,
      eval_strategy: 'steps',
      eval_steps: 2,
      save_strategy: 'no',
      metric_for_best_model: 'gen_f1',
      early_stopping_patience: 2,
      early_stopping_threshold: 0.15,
    },
    { generateEval: planted([0.5, 0.6, 0.7, 0.9]).fn },
  );
  assert.equal(r2.res.steps, 6);
  assert.equal(r2.res.best.best_metric, 0.7); // HF's best metric still moves on any strict improvement
  // patience never exhausted: the run completes
  const d3 = tmp();
  const r3 = await run(
    d3,
    {
      max_steps: 10,
      per_device_train_batch_size: 2,
      eval_strategy: 'steps',
      eval_steps: 2,
      save_strategy: 'no',
      metric_for_best_model: 'gen_f1',
      early_stopping_patience: 2,
    },
    { generateEval: planted([0.1, 0.2, 0.2, 0.3, 0.3]).fn },
  );
  assert.equal(r3.res.steps, 10);
  assert.equal(r3.res.earlyStopped, false);
});

test('epoch strategies: log, evaluate and save at each epoch end (3 updates per epoch, 2 epochs)', async () => {
  const d = tmp();
  await run(d, {
    num_train_epochs: 2,
    per_device_train_batch_size: 2,
    logging_strategy: 'epoch',
    eval_strategy: 'epoch',
    save_strategy: 'epoch',
  });
  assert.deepEqual(steps(d, 'loss'), [3, 6]);
  assert.deepEqual(steps(d, 'eval_loss'), [3, 6]);
  assert.deepEqual(
    listCheckpoints(d).map((c) => c.step),
    [3, 6],
  );
  const e = tmp();
  await run(e, {
    max_steps: 5,
    per_device_train_batch_size: 2,
    logging_strategy: 'steps',
    logging_steps: 2,
    eval_strategy: 'steps',
    save_strategy: 'steps',
    save_steps: 2,
  });
  // HF: steps strategies evaluate every eval_steps (default: logging_steps) and also save / evaluate at the last update
  assert.deepEqual(steps(e, 'loss'), [2, 4]);
  assert.deepEqual(steps(e, 'eval_loss'), [2, 4, 5]);
  assert.deepEqual(
    listCheckpoints(e).map((c) => c.step),
    [2, 4, 5],
  );
  const n = tmp();
  await run(n, {
    max_steps: 3,
    per_device_train_batch_size: 2,
    logging_strategy: 'no',
    eval_strategy: 'no',
    save_strategy: 'no',
  });
  assert.equal(existsSync(join(n, 'metrics.jsonl')), false);
  assert.deepEqual(listCheckpoints(n), []);
});

test('save_strategy best: a checkpoint only when the evaluation is a new best (HF SaveStrategy.BEST)', async () => {
  const d = tmp();
  const { res } = await run(
    d,
    {
      max_steps: 8,
      per_device_train_batch_size: 2,
      eval_strategy: 'steps',
      eval_steps: 2,
      save_strategy: 'best',
      load_best_model_at_end: true,
      metric_for_best_model: 'gen_f1',
    },
    { generateEval: planted([0.2, 0.9, 0.5, 0.95]).fn },
  );
  assert.deepEqual(
    listCheckpoints(d).map((c) => c.step),
    [2, 4, 8],
  );
  assert.equal(res.best.best_model_checkpoint, join(d, 'checkpoint-8'));
});

test('resume_from_checkpoint: true resumes the newest checkpoint exactly like --resume latest', async () => {
  const t = {
    max_steps: 6,
    per_device_train_batch_size: 2,
    save_steps: 2,
    logging_steps: 1,
    learning_rate: 0.05,
    shuffle: true,
    seed: 3,
  };
  const full = tmp(),
    cut = tmp();
  const a = await run(full, t);
  await run(cut, t, { haltAfterStep: 3 });
  const b = await run(cut, { ...t, resume_from_checkpoint: true });
  assert.equal(b.res.steps, 6);
  assert.deepEqual(Array.from(b.m.weight.toFloat32Array()), Array.from(a.m.weight.toFloat32Array()));
  await assert.rejects(run(tmp(), { ...t, resume_from_checkpoint: true }), /no checkpoint-<step>/);
});

test('refusals name the key: wandb, unmatched strategies, early stopping without evaluation, fp16 on the CPU', async () => {
  assert.throws(
    () => cfg({ report_to: ['wandb'] }, 'c.yaml'),
    /c\.yaml: training\.report_to: wandb is not supported .*tensorboard/,
  );
  assert.throws(() => cfg({ report_to: 'mlflow' }), /unknown integration "mlflow"/);
  assert.deepEqual(cfg({ report_to: 'all' }).report_to, ['tensorboard']);
  assert.deepEqual(cfg({ report_to: 'none' }).report_to, []);
  assert.deepEqual(cfg({ report_to: ['none'] }).report_to, []);
  assert.deepEqual(cfg({}).report_to, []); // HF 5 default "none"
  assert.throws(
    () => cfg({ load_best_model_at_end: true, eval_strategy: 'steps', eval_steps: 2, save_strategy: 'epoch' }),
    /save_strategy \(epoch\) to equal training\.eval_strategy \(steps\)/,
  );
  assert.throws(
    () =>
      cfg({
        load_best_model_at_end: true,
        eval_strategy: 'steps',
        eval_steps: 4,
        save_strategy: 'steps',
        save_steps: 6,
      }),
    /save_steps \(6\) to be a multiple of training\.eval_steps \(4\)/,
  );
  assert.throws(() => cfg({ load_best_model_at_end: true }), /load_best_model_at_end needs training\.eval_strategy/);
  assert.throws(
    () => cfg({ early_stopping_patience: 2, metric_for_best_model: 'loss' }),
    /early_stopping_patience needs training\.eval_strategy/,
  );
  assert.throws(
    () => cfg({ metric_for_best_model: 'accuracy' }),
    /metric_for_best_model "accuracy" is not a logged evaluation metric/,
  );
  assert.throws(() => cfg({ fp16: true, bf16: true }), /fp16 or training\.bf16, not both/);
  const c = cfg({ load_best_model_at_end: true, eval_strategy: 'epoch', save_strategy: 'epoch' });
  assert.equal(c.metric_for_best_model, 'loss');
  assert.equal(c.greater_is_better, false);
  assert.equal(cfg({ eval_strategy: 'steps', logging_steps: 7 }).eval_steps, 7);
  await assert.rejects(run(tmp(), { max_steps: 1, fp16: true }), /training\.fp16: .*CUDA; this run is on the CPU/);
  await assert.rejects(
    run(tmp(), {
      max_steps: 2,
      eval_strategy: 'steps',
      eval_steps: 1,
      save_strategy: 'steps',
      save_steps: 1,
      load_best_model_at_end: true,
      metric_for_best_model: 'gen_f1',
    }),
    /metric_for_best_model gen_f1 needs generation-based evaluation/,
  );
});

// The trainer loop on a toy model: one update checked against a loss and gradient norm computed by hand in JS,
// accumulation = one big batch (token-weighted), resume after a simulated kill equals an uninterrupted run exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed } from '../../src/tensor/index.js';
import { assertClose } from '../../src/util/close.js';
import { validateConfig, type TrainingSection } from '../../src/train/config.js';
import type { Example } from '../../src/train/data.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { Trainer } from '../../src/train/trainer.js';
import { ToyLM } from '../../src/train/toy-model.test-util.js';
import type { TrainRecord, EvalRecord } from '../../src/train/metrics.js';

function training(o: Partial<TrainingSection>): TrainingSection {
  return validateConfig({ model: 'm', output_dir: 'o', data: { train: 't' }, training: o }, 'test').training;
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'medlora-trainer-'));

function readMetrics(dir: string): Array<TrainRecord | EvalRecord> {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TrainRecord);
}

// rows of different lengths and label masks (V = 7)
const ROWS: Example[] = [
  { input_ids: [1, 2, 3, 4], labels: [-100, -100, 3, 4] },
  { input_ids: [5, 6, 1], labels: [-100, 6, 1] },
  { input_ids: [2, 2, 6, 5, 0], labels: [-100, 2, 6, 5, 0] },
  { input_ids: [3, 1], labels: [-100, 1] },
  { input_ids: [4, 0, 4], labels: [-100, -100, 4] },
  { input_ids: [6, 5, 4, 3], labels: [-100, 5, 4, 3] },
];

test('one update: loss and pre-clip gradient norm equal a hand computation', async () => {
  manualSeed(0);
  const m = new ToyLM(7, 3);
  const E = Array.from(m.emb.toFloat32Array()),
    W = Array.from(m.weight.toFloat32Array());
  const dir = tmp();
  const rows = ROWS.slice(0, 2);
  const tr = new Trainer({
    model: m,
    training: training({
      max_steps: 1,
      per_device_train_batch_size: 2,
      shuffle: false,
      learning_rate: 0.1,
      logging_steps: 1,
      save_steps: null,
    }),
    runDir: dir,
    train: rows,
    padId: 0,
  });
  await tr.train();
  // by hand: logits(t) = E[id_t] . W^T + 0; loss = mean over targets of -log softmax(logits(t-1))[label_t];
  // dL/dW[v] = sum_t (p_t[v] - [v = y]) E[id_t] / N, dL/db[v] = sum_t (p_t[v] - [v = y]) / N
  let sum = 0,
    n = 0;
  const gW = new Array<number>(21).fill(0),
    gb = new Array<number>(7).fill(0);
  const pairs: Array<[number, number]> = [];
  for (const r of rows)
    for (let t = 1; t < r.labels.length; t++) if (r.labels[t] !== -100) pairs.push([r.input_ids[t - 1]!, r.labels[t]!]);
  for (const [x, y] of pairs) {
    const z = Array.from(
      { length: 7 },
      (_, v) => E[x * 3]! * W[v * 3]! + E[x * 3 + 1]! * W[v * 3 + 1]! + E[x * 3 + 2]! * W[v * 3 + 2]!,
    );
    const mx = Math.max(...z);
    const lse = mx + Math.log(z.reduce((a, v) => a + Math.exp(v - mx), 0));
    sum += lse - z[y]!;
    n++;
    for (let v = 0; v < 7; v++) {
      const d = Math.exp(z[v]! - lse) - (v === y ? 1 : 0);
      gb[v]! += d;
      for (let k = 0; k < 3; k++) gW[v * 3 + k]! += d * E[x * 3 + k]!;
    }
  }
  const norm = Math.sqrt([...gW, ...gb].reduce((a, g) => a + (g / n) ** 2, 0));
  const [rec] = readMetrics(dir) as TrainRecord[];
  assert.equal(n, 4);
  assertClose([rec!.loss, rec!.grad_norm], [sum / n, norm], {
    atol: 1e-5,
    label: 'loss, grad_norm vs hand computation',
  });
  assert.equal(rec!.learning_rate, 0.1);
  assert.equal(rec!.step, 1);
  assert.equal(rec!.tokens, 4);
});

async function runToy(
  dir: string,
  t: Partial<TrainingSection>,
  extra: { resume?: string; haltAfterStep?: number; p?: number } = {},
) {
  manualSeed(123); // same init for every run
  const m = new ToyLM(7, 4, extra.p ?? 0);
  const tr = new Trainer({
    model: m,
    training: training(t),
    runDir: dir,
    train: ROWS,
    validation: ROWS.slice(0, 2),
    padId: 0,
    resume: extra.resume,
    haltAfterStep: extra.haltAfterStep,
  });
  return { res: await tr.train(), m };
}

test('gradient accumulation: batch 1 x 6 micro-batches == one batch of 6 (token-weighted mean)', async () => {
  const a = tmp(),
    b = tmp();
  const base = {
    max_steps: 3,
    shuffle: false,
    learning_rate: 0.05,
    logging_steps: 1,
    save_steps: null,
    max_grad_norm: 0,
  };
  await runToy(a, { ...base, per_device_train_batch_size: 6, gradient_accumulation_steps: 1 });
  await runToy(b, { ...base, per_device_train_batch_size: 1, gradient_accumulation_steps: 6 });
  const ra = readMetrics(a).filter((r) => 'loss' in r) as TrainRecord[],
    rb = readMetrics(b).filter((r) => 'loss' in r) as TrainRecord[];
  assertClose(
    rb.map((r) => r.loss),
    ra.map((r) => r.loss),
    { atol: 1e-6, label: 'losses accumulate vs one batch' },
  );
  assertClose(
    rb.map((r) => r.grad_norm),
    ra.map((r) => r.grad_norm),
    { atol: 1e-6, label: 'grad norms' },
  );
});

for (const optim of ['adamw_torch', 'adamw_8bit'] as const) {
  test(`kill and resume equals an uninterrupted run exactly (${optim}, shuffle, accumulation, dropout, epochs)`, async () => {
    const t: Partial<TrainingSection> = {
      num_train_epochs: 4,
      per_device_train_batch_size: 2,
      gradient_accumulation_steps: 2,
      shuffle: true,
      seed: 5,
      learning_rate: 0.05,
      warmup_ratio: 0.2,
      lr_scheduler_type: 'cosine',
      logging_steps: 1,
      save_steps: 3,
      eval_steps: 2,
      optim,
      weight_decay: 0.01,
    };
    const full = tmp(),
      cut = tmp();
    const r1 = await runToy(full, t, { p: 0.3 });
    // 6 rows / batch 2 = 3 micro-batches per epoch -> ceil(3/2) = 2 updates per epoch -> 8 updates
    assert.equal(r1.res.totalSteps, 8);
    const h = await runToy(cut, t, { p: 0.3, haltAfterStep: 5 });
    assert.equal(h.res.halted, true);
    assert.deepEqual(
      listCheckpoints(cut).map((c) => c.step),
      [3],
    );
    const r2 = await runToy(cut, t, { p: 0.3, resume: 'latest' });
    assert.equal(r2.res.steps, 8);
    const a = readMetrics(full),
      b = readMetrics(cut);
    const strip = (rs: Array<TrainRecord | EvalRecord>) => rs.map((r) => ({ ...r, tokens_per_second: 0 }));
    // identical records: losses, rates, norms, epochs and eval losses, bit for bit (steps 4-5 were redone after the kill)
    assert.deepEqual(strip(b), strip(a));
    assert.deepEqual(Array.from(r2.m.weight.toFloat32Array()), Array.from(r1.m.weight.toFloat32Array()));
    const losses = a.filter((r): r is TrainRecord => 'loss' in r).map((r) => r.loss);
    console.log(`  ${optim}: losses ${losses.map((l) => l.toFixed(4)).join(' ')}`);
  });
}

test('save_total_limit keeps the newest checkpoints; a checkpoint is complete or absent', async () => {
  const d = tmp();
  await runToy(d, {
    max_steps: 6,
    per_device_train_batch_size: 2,
    save_steps: 1,
    save_total_limit: 2,
    logging_steps: 1,
  });
  assert.deepEqual(
    listCheckpoints(d).map((c) => c.step),
    [5, 6],
  );
  for (const f of ['trainer_state.json', 'trainable.safetensors', 'optimizer.safetensors'])
    assert.ok(existsSync(join(d, 'checkpoint-6', f)));
});

test('resume refuses a changed batch size (the data position would mean something else)', async () => {
  const d = tmp();
  await runToy(d, { max_steps: 2, per_device_train_batch_size: 2, save_steps: 1 });
  await assert.rejects(
    runToy(d, { max_steps: 4, per_device_train_batch_size: 3, save_steps: 1 }, { resume: 'latest' }),
    /per_device_train_batch_size was 2 .* is 3 now/,
  );
  await assert.rejects(runToy(tmp(), { max_steps: 2 }, { resume: 'latest' }), /no checkpoint-<step>/);
});

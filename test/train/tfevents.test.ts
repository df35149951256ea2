// TensorBoard event files: medlora's decoder reads a file written by torch's SummaryWriter (committed fixture);
// medlora's own files have valid framing and CRCs; and a training run with report_to: [tensorboard] is read back by
// TensorBoard's own EventAccumulator (Python, when available) with every scalar equal to metrics.jsonl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { manualSeed } from '../../src/tensor/index.js';
import { validateConfig, type TrainingSection } from '../../src/train/config.js';
import { Trainer } from '../../src/train/trainer.js';
import { ToyLM } from '../../src/train/toy-model.test-util.js';
import {
  crc32c,
  frameRecord,
  maskedCrc32c,
  readEventsFile,
  readRecords,
  TfEventsWriter,
  tensorboardScalars,
} from '../../src/train/tfevents.js';
import type { MetricRecord } from '../../src/train/metrics.js';

const FX = join(packageRoot(), 'test', 'fixtures', 'run-keys', 'torch-writer');
const tmp = (): string => mkdtempSync(join(tmpdir(), 'medlora-tb-'));
const f32 = Math.fround;

test("CRC32C and masking: the standard check value, and TensorFlow's mask", () => {
  // CRC-32C check value of "123456789" (RFC 3720 B.4 / every CRC catalogue): 0xE3069283
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  const c = 0xe3069283;
  assert.equal(maskedCrc32c(Buffer.from('123456789')), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
});

test('reads the events file torch.utils.tensorboard.SummaryWriter wrote: every scalar and the text', () => {
  const w = JSON.parse(readFileSync(join(FX, 'written.json'), 'utf8')) as {
    file: string;
    scalars: Array<{ tag: string; step: number; value: number; wall_time: number }>;
    texts: Array<{ tag: string; step: number; text: string }>;
  };
  const events = readEventsFile(join(FX, w.file));
  assert.equal(events[0]!.fileVersion, 'brain.Event:2');
  const scalars = events.flatMap((e) =>
    e.values
      .filter((v) => v.simpleValue !== undefined)
      .map((v) => ({ tag: v.tag, step: e.step, value: v.simpleValue!, wall_time: e.wallTime })),
  );
  assert.equal(scalars.length, w.scalars.length);
  let maxDiff = 0;
  w.scalars.forEach((s, i) => {
    assert.equal(scalars[i]!.tag, s.tag);
    assert.equal(scalars[i]!.step, s.step);
    assert.equal(scalars[i]!.wall_time, s.wall_time);
    maxDiff = Math.max(maxDiff, Math.abs(scalars[i]!.value - f32(s.value)));
  });
  console.log(`  ${scalars.length} scalars, max |decoded - float32(written)| = ${maxDiff}`);
  assert.equal(maxDiff, 0);
  const texts = events.flatMap((e) =>
    e.values
      .filter((v) => v.pluginName === 'text')
      .map((v) => ({ tag: v.tag, step: e.step, text: v.strings![0], dtype: v.dtype })),
  );
  assert.deepEqual(
    texts,
    w.texts.map((t) => ({ ...t, dtype: 7 })),
  );
});

test("medlora's writer: framing and both CRCs of every record check; a flipped byte is caught", () => {
  const d = tmp();
  const wr = new TfEventsWriter(d, { now: 1700000000.25, host: 'testhost' });
  assert.match(wr.file, /events\.out\.tfevents\.1700000000\.testhost\.\d+\.\d+$/);
  wr.addScalar('train/loss', 1.25, 3, 1700000001);
  wr.addScalars(
    [
      ['eval/loss', 0.5],
      ['eval/perplexity', Math.exp(0.5)],
    ],
    4,
    1700000002,
  );
  wr.addText('config', 'héllo', 0, 1700000003);
  const bytes = readFileSync(wr.file);
  const recs = readRecords(bytes, wr.file);
  assert.equal(recs.length, 4);
  // the framing by hand: length, masked CRC of the 8 length bytes, data, masked CRC of the data
  let o = 0;
  for (const r of recs) {
    assert.equal(Number(bytes.readBigUInt64LE(o)), r.length);
    assert.equal(bytes.readUInt32LE(o + 8), maskedCrc32c(bytes.subarray(o, o + 8)));
    assert.equal(bytes.readUInt32LE(o + 12 + r.length), maskedCrc32c(r));
    assert.deepEqual(frameRecord(r), bytes.subarray(o, o + 16 + r.length));
    o += 16 + r.length;
  }
  const ev = readEventsFile(wr.file);
  assert.deepEqual(ev[1]!.values, [{ tag: 'train/loss', simpleValue: 1.25 }]);
  assert.equal(ev[1]!.step, 3);
  assert.deepEqual(
    ev[2]!.values.map((v) => v.simpleValue),
    [0.5, f32(Math.exp(0.5))],
  );
  assert.deepEqual(ev[3]!.values[0], { tag: 'config/text_summary', pluginName: 'text', dtype: 7, strings: ['héllo'] });
  const bad = Buffer.from(bytes);
  bad[bad.length - 7]! ^= 1;
  assert.throws(() => readRecords(bad, 'x.tfevents'), /x\.tfevents: bad data CRC/);
});

// ---------------------------------------------------------------------------------------------------------------
// a training run read back by TensorBoard itself

const ROWS = [
  { input_ids: [1, 2, 3, 4], labels: [-100, -100, 3, 4] },
  { input_ids: [5, 6, 1], labels: [-100, 6, 1] },
  { input_ids: [2, 2, 6, 5, 0], labels: [-100, 2, 6, 5, 0] },
  { input_ids: [3, 1], labels: [-100, 1] },
  { input_ids: [4, 0, 4], labels: [-100, -100, 4] },
  { input_ids: [6, 5, 4, 3], labels: [-100, 5, 4, 3] },
];

function training(o: Record<string, unknown>): TrainingSection {
  return validateConfig({ model: 'm', output_dir: 'o', data: { train: 't' }, training: o }, 'test').training;
}

async function tbRun(): Promise<{ dir: string; logDir: string; records: MetricRecord[] }> {
  const dir = tmp();
  manualSeed(7);
  let calls = 0;
  const tr = new Trainer({
    model: new ToyLM(7, 4),
    runDir: dir,
    train: ROWS,
    validation: ROWS.slice(0, 3),
    padId: 0,
    training: training({
      report_to: 'tensorboard',
      max_steps: 6,
      per_device_train_batch_size: 2,
      learning_rate: 0.05,
      logging_steps: 1,
      eval_strategy: 'steps',
      eval_steps: 2,
      save_strategy: 'no',
      warmup_steps: 2,
      lr_scheduler_type: 'cosine',
    }),
    generateEval: () => {
      calls++;
      return {
        gen_f1: 0.1 * calls,
        gen_precision: 0.2 * calls,
        gen_recall: 0.05 * calls,
        gen_parse_rate: 1,
        gen_samples: 3,
        'gen_f1/ddi-triplets': 0.3,
      };
    },
    reportConfig: { lora: { r: 8 }, training: { max_steps: 6 } },
  });
  await tr.train();
  const runs = readdirSync(join(dir, 'runs'));
  assert.equal(runs.length, 1);
  assert.match(runs[0]!, /^[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_.+$/, 'HF default_logdir name');
  const records = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MetricRecord);
  return { dir, logDir: join(dir, 'runs', runs[0]!), records };
}

/** every (tag, step, value) metrics.jsonl implies, with HF's tag names */
function expectedScalars(records: MetricRecord[]): Map<string, Array<[number, number]>> {
  const m = new Map<string, Array<[number, number]>>();
  for (const r of records)
    for (const [tag, v] of tensorboardScalars(r)) {
      if (!m.has(tag)) m.set(tag, []);
      m.get(tag)!.push([r.step, v]);
    }
  return m;
}

test("report_to tensorboard: medlora's decoder reads the run back equal to metrics.jsonl", async () => {
  const { logDir, records } = await tbRun();
  const files = readdirSync(logDir);
  assert.equal(files.length, 1);
  assert.match(files[0]!, /^events\.out\.tfevents\.\d{10}\./);
  const got = new Map<string, Array<[number, number]>>();
  for (const e of readEventsFile(join(logDir, files[0]!)))
    for (const v of e.values)
      if (v.simpleValue !== undefined) {
        if (!got.has(v.tag)) got.set(v.tag, []);
        got.get(v.tag)!.push([e.step, v.simpleValue]);
      }
  const want = expectedScalars(records);
  for (const tag of [
    'train/loss',
    'train/learning_rate',
    'train/grad_norm',
    'train/epoch',
    'train/tokens_per_second',
    'eval/loss',
    'eval/perplexity',
    'eval/gen_f1',
    'eval/gen_precision',
    'eval/gen_recall',
    'eval/gen_f1/ddi-triplets',
  ]) {
    assert.ok(want.has(tag), `metrics.jsonl implies ${tag}`);
  }
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [tag, pts] of want)
    assert.deepEqual(
      got.get(tag),
      pts.map(([s, v]) => [s, f32(v)]),
      tag,
    );
});

function python(): string | undefined {
  const cands = [process.env.MEDLORA_PYTHON, '/tmp/v/bin/python'].filter((p): p is string => !!p && existsSync(p));
  return cands.find((p) => spawnSync(p, ['-c', 'import tensorboard'], { encoding: 'utf8' }).status === 0);
}
const PY = python();

test(
  "report_to tensorboard: TensorBoard's own EventAccumulator reads every scalar, equal to metrics.jsonl, and the config text",
  { skip: !PY && 'no Python with the tensorboard package (set MEDLORA_PYTHON, or /tmp/v/bin/python)' },
  async () => {
    const { logDir, records } = await tbRun();
    const script = join(tmp(), 'read.py');
    writeFileSync(
      script,
      [
        'import sys, json',
        'from tensorboard.backend.event_processing.event_accumulator import EventAccumulator',
        "ea = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0, 'tensors': 0})",
        'ea.Reload()',
        'tags = ea.Tags()',
        "out = {'scalars': {t: [[e.step, e.value] for e in ea.Scalars(t)] for t in tags['scalars']},",
        "       'texts': {t: [[e.step, e.tensor_proto.string_val[0].decode('utf-8')] for e in ea.Tensors(t)] for t in tags['tensors']}}",
        'print(json.dumps(out))',
      ].join('\n'),
    );
    const r = spawnSync(PY!, [script, logDir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const tb = JSON.parse(r.stdout) as {
      scalars: Record<string, Array<[number, number]>>;
      texts: Record<string, Array<[number, string]>>;
    };
    const want = expectedScalars(records);
    assert.deepEqual(Object.keys(tb.scalars).sort(), [...want.keys()].sort());
    let n = 0,
      maxDiff = 0;
    for (const [tag, pts] of want) {
      const g = tb.scalars[tag]!;
      assert.deepEqual(
        g.map(([s]) => s),
        pts.map(([s]) => s),
        `${tag} steps`,
      );
      pts.forEach(([, v], i) => {
        maxDiff = Math.max(maxDiff, Math.abs(g[i]![1] - f32(v)));
        n++;
      });
    }
    console.log(
      `  EventAccumulator: ${Object.keys(tb.scalars).length} tags, ${n} scalars, max |tensorboard - float32(metrics.jsonl)| = ${maxDiff}`,
    );
    assert.equal(maxDiff, 0);
    assert.deepEqual(tb.texts['config/text_summary'], [
      [0, JSON.stringify({ lora: { r: 8 }, training: { max_steps: 6 } }, null, 2)],
    ]);
  },
);

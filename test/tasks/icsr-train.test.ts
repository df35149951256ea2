// The ICSR schema task end to end on a tiny model: a training config with a `task:` section (configs/tasks/icsr.json)
// trains a tiny random Llama for a few LoRA steps on the hand-written gold set (test/fixtures/icsr-gold.jsonl), then
// `medlora eval --task-file` scores it field by field and `medlora extract --task-file` answers. A few steps do not
// learn the task; what is checked is the plumbing and that every constrained answer parses and validates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyLlama } from '../tiny-llama.js';
import { packageRoot } from '../../src/util/paths.js';
import { loadTaskFile, validate } from '../../src/data/tasks/index.js';
import type { MedRecord } from '../../src/data/schema.js';

const ROOT = packageRoot();
const BIN = join(ROOT, 'bin', 'medlora.js');
const TASK_FILE = join(ROOT, 'configs', 'tasks', 'icsr.json');

/** A 2-layer Llama (hidden 32) with N(0, 0.02) weights and tied embeddings, plus a byte-level BPE trained on `texts`. */
function tinyLlama(dir: string, texts: string[]): void {
  writeTinyLlama(dir, texts, { bpeVocab: 384, hidden: 32, intermediate: 64, layers: 2, maxPositions: 1024 });
}

test('ICSR task: config task section -> train a few steps -> eval (field-level scores, 100% valid) -> extract', () => {
  const work = mkdtempSync(join(tmpdir(), 'medlora-icsr-'));
  const taskDef = JSON.parse(readFileSync(TASK_FILE, 'utf8'));
  const task = loadTaskFile(TASK_FILE);
  const gold = readFileSync(join(ROOT, 'test', 'fixtures', 'icsr-gold.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MedRecord);
  const model = join(work, 'model');
  tinyLlama(model, [task.instruction, ...gold.flatMap((r) => [r.input, task.render(r.gold)])]);
  const data = join(work, 'gold.jsonl');
  writeFileSync(data, gold.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const config = join(work, 'train.json');
  writeFileSync(
    config,
    JSON.stringify({
      model,
      output_dir: join(work, 'run'),
      task: taskDef,
      data: { train: data },
      lora: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] },
      training: {
        max_steps: 4,
        per_device_train_batch_size: 3,
        learning_rate: 3e-3,
        logging_steps: 1,
        save_steps: null,
        seed: 1,
      },
    }),
  );
  let r = spawnSync(process.execPath, [BIN, 'train', '--config', config, '--threads', '1', '--quiet'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const resolved = JSON.parse(readFileSync(join(work, 'run', 'config.resolved.json'), 'utf8'));
  assert.deepEqual(resolved.task, taskDef, 'the task definition is saved with the run');

  // eval: every record's constrained answer parses and validates; scores are per JSON path
  r = spawnSync(
    process.execPath,
    [
      BIN,
      'eval',
      '--task-file',
      TASK_FILE,
      '--model',
      model,
      '--adapter',
      join(work, 'run', 'adapter'),
      '--data',
      data,
      '--max-new-tokens',
      '300',
      '--temperature',
      '1',
      '--seed',
      '3',
      '--no-loss',
      '--out',
      join(work, 'eval'),
      '--json',
      '--quiet',
      '--threads',
      '1',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const scores = JSON.parse(r.stdout);
  const preds = readFileSync(join(work, 'eval', 'predictions.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { output: string; unparsed: string[] });
  assert.equal(preds.length, gold.length);
  for (const p of preds) {
    assert.deepEqual(p.unparsed, [], p.output);
    assert.deepEqual(validate(task.resultSchema, JSON.parse(p.output)), [], p.output);
  }
  const metrics = scores.metrics ?? scores.score?.metrics ?? scores.runs?.[0]?.score?.metrics;
  assert.ok(metrics, `scores.json shape: ${Object.keys(scores)}`);
  for (const t of metrics.perType as Array<{ type: string }>)
    assert.match(t.type, /^(patient|suspect_drugs|reactions|seriousness)/);
  console.log(
    `  tiny model after 4 steps: ${preds.length}/${gold.length} answers parse and validate; micro F1 ${metrics.micro.f1.toFixed(3)} over ${metrics.perType.length} paths`,
  );

  // extract with the same task file
  r = spawnSync(
    process.execPath,
    [
      BIN,
      'extract',
      '--task-file',
      TASK_FILE,
      '--task',
      'icsr',
      '--model',
      model,
      '--adapter',
      join(work, 'run', 'adapter'),
      '--max-new-tokens',
      '300',
      '--quiet',
      '--threads',
      '1',
      gold[0]!.input,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n')[0]!);
  assert.equal(out.task, 'icsr');
  assert.deepEqual(validate(task.resultSchema, out.result), []);
});

// A preset-shaped fine-tune on a slice of the DrugBank DDI sentences: configs/ddi-llama31-8b.yaml (LoRA on all seven
// projections + lm_head, paged 8-bit AdamW, bf16, gradient checkpointing) with --model pointing at a tiny Llama built
// here (random weights; a 768-token byte-level BPE trained on the training slice with the project's BPE trainer, so
// the logits stay small enough for CI) and a shortened schedule. Train and validation loss must fall, and
// report.html must hold both curves. The run directory is kept under $MEDLORA_DEMO_DIR when set (to look at it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyLlama } from '../tiny-llama.js';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { renderTarget } from '../../src/data/tasks.js';
import type { MedRecord } from '../../src/data/schema.js';

const BIN = join(packageRoot(), 'bin', 'medlora.js');

/** A 2-layer Llama (hidden 64) with N(0, 0.02) weights and tied embeddings, plus a BPE tokenizer trained on `texts`. */
function tinyLlama(dir: string, texts: string[]): void {
  writeTinyLlama(dir, texts, {
    bpeVocab: 768,
    vocab: 768,
    hidden: 64,
    intermediate: 128,
    layers: 2,
    maxPositions: 512,
  });
}

test(
  'DDI preset on a DrugBank slice: train and validation loss fall; report.html has the curves',
  { skip: !hasShared() && 'needs ../shared' },
  () => {
    const work = process.env.MEDLORA_DEMO_DIR ?? mkdtempSync(join(tmpdir(), 'medlora-ddi-demo-'));
    mkdirSync(work, { recursive: true });
    // import the corpus with the project's importer, then take a slice: 256 train / 32 validation records
    const all = join(work, 'drugbank.jsonl');
    let r = spawnSync(
      process.execPath,
      [
        BIN,
        'data',
        'import',
        'drugbank-sentences',
        sharedPath('corpora', 'drugbank-ddi-sentences', 'Clean_drub_interactions.csv'),
        '--out',
        all,
        '--skip-invalid',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const lines = readFileSync(all, 'utf8').trim().split('\n');
    const trainLines = lines.slice(0, 256);
    writeFileSync(join(work, 'train.jsonl'), trainLines.join('\n') + '\n');
    writeFileSync(join(work, 'val.jsonl'), lines.slice(1000, 1032).join('\n') + '\n');
    const model = join(work, 'tiny-llama');
    const recs0 = trainLines.map((l) => JSON.parse(l) as MedRecord);
    tinyLlama(model, [...recs0.map((x) => x.input), ...recs0.map((x) => renderTarget(x))]);
    const out = join(work, 'run');
    r = spawnSync(
      process.execPath,
      [
        BIN,
        'train',
        '--config',
        join(packageRoot(), 'configs', 'ddi-llama31-8b.yaml'),
        '--model',
        model,
        '--output',
        out,
        '--data.train',
        join(work, 'train.jsonl'),
        '--data.validation',
        join(work, 'val.jsonl'),
        '--max_steps',
        '24',
        '--eval_steps',
        '8',
        '--save_steps',
        '12',
        '--logging_steps',
        '1',
        '--learning_rate',
        '3e-3',
        '--warmup_steps',
        '5',
        '--threads',
        '1',
        '--json',
        ...(existsSync(out) ? ['--resume', 'latest'] : []),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const start = events.find((e) => e.event === 'start')!;
    console.log(
      `  trainable ${String(start.trainable_params)} of ${String(start.total_params)}; optimizer state ${String(start.optimizer_state_bytes)} B (f32: ${String(start.optimizer_state_bytes_fp32)} B)`,
    );
    assert.ok(
      (start.optimizer_state_bytes as number) < 0.3 * (start.optimizer_state_bytes_fp32 as number),
      '8-bit state is under 30% of f32',
    );
    const recs = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss?: number; eval_loss?: number });
    const train = recs.filter((x) => x.loss !== undefined).map((x) => x.loss!);
    const evals = recs.filter((x) => x.eval_loss !== undefined).map((x) => x.eval_loss!);
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `  train loss: first 5 mean ${mean(train.slice(0, 5)).toFixed(3)}, last 5 mean ${mean(train.slice(-5)).toFixed(3)}; eval: ${evals.map((e) => e.toFixed(3)).join(' -> ')}`,
    );
    assert.equal(evals.length, 3);
    assert.ok(mean(train.slice(-5)) < mean(train.slice(0, 5)) - 0.5, 'train loss falls');
    for (let i = 1; i < evals.length; i++)
      assert.ok(evals[i]! < evals[i - 1]!, 'validation loss falls at every evaluation');
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    for (const title of ['Loss', 'Validation loss', 'Learning rate', 'Gradient norm', 'Epoch'])
      assert.ok(html.includes(`>${title}`), title);
    assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(html), 'self-contained: no scripts, no external URLs');
  },
);

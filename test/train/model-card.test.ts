// A whole `medlora train` run with the issue-17 keys (report_to tensorboard, epoch strategies, best model by gen_f1,
// all-linear, NEFTune, a polynomial schedule) on a DrugBank slice split by `medlora data split`, with a tiny Llama
// built here: the adapter's README.md is a Hugging Face model card whose front matter parses (the `yaml` package)
// and whose numbers are the run's (split-report.json counts, examples, updates, validation F1 / loss).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyLlama } from '../tiny-llama.js';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { renderTarget } from '../../src/data/tasks.js';
import type { MedRecord } from '../../src/data/schema.js';
import { parseFrontMatter, updateCardEvaluation } from '../../src/train/model-card.js';
import { readEventsFile } from '../../src/train/tfevents.js';

const BIN = join(packageRoot(), 'bin', 'medlora.js');

/** A 1-layer Llama (hidden 32) with N(0, 0.02) weights and tied embeddings, plus a BPE tokenizer trained on `texts`. */
function tinyLlama(dir: string, texts: string[]): void {
  writeTinyLlama(dir, texts, { bpeVocab: 400, vocab: 400, hidden: 32, intermediate: 64, layers: 1, maxPositions: 512 });
}

test(
  'medlora train with the run keys: model card, TensorBoard files, best checkpoint',
  { skip: !hasShared() && 'needs ../shared' },
  () => {
    const work = mkdtempSync(join(tmpdir(), 'medlora-card-'));
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
    writeFileSync(
      join(work, 'slice.jsonl'),
      readFileSync(all, 'utf8').trim().split('\n').slice(0, 60).join('\n') + '\n',
    );
    r = spawnSync(
      process.execPath,
      [
        BIN,
        'data',
        'split',
        join(work, 'slice.jsonl'),
        '--out',
        join(work, 'ddi'),
        '--ratios',
        '0.8,0.1,0.1',
        '--stratify',
        'none',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const split = JSON.parse(readFileSync(join(work, 'ddi', 'split-report.json'), 'utf8')) as {
      counts: Record<string, { total: number }>;
    };
    const recs = readFileSync(join(work, 'ddi', 'train.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as MedRecord);
    const model = join(work, 'tiny');
    tinyLlama(model, [...recs.map((x) => x.input), ...recs.map((x) => renderTarget(x))]);
    const out = join(work, 'run');
    writeFileSync(
      join(work, 'cfg.yaml'),
      [
        `model: ${model}`,
        `output_dir: ${out}`,
        `data: { train: ${join(work, 'ddi', 'train.jsonl')}, validation: ${join(work, 'ddi', 'validation.jsonl')}, max_length: 400 }`,
        'lora: { r: 4, lora_alpha: 8, target_modules: all-linear }',
        'training:',
        '  learning_rate: 3.0e-3',
        '  lr_scheduler_type: polynomial',
        '  lr_scheduler_kwargs: { power: 2.0 }',
        '  warmup_steps: 1',
        '  num_train_epochs: 2',
        '  per_device_train_batch_size: 8',
        '  per_device_eval_batch_size: 8',
        '  report_to: [tensorboard]',
        '  logging_strategy: epoch',
        '  eval_strategy: epoch',
        '  save_strategy: epoch',
        '  load_best_model_at_end: true',
        '  metric_for_best_model: gen_f1',
        '  eval_generate_steps: 1',
        '  eval_generate_samples: 2',
        '  eval_generate_max_new_tokens: 6',
        '  neftune_noise_alpha: 5',
        '  seed: 1',
        '',
      ].join('\n'),
    );
    r = spawnSync(process.execPath, [BIN, 'train', '--config', join(work, 'cfg.yaml'), '--threads', '1', '--json'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, number>);
    const perEpoch = Math.ceil(split.counts.train!.total / 8);
    const gens = metrics.filter((m) => 'gen_f1' in m),
      evals = metrics.filter((m) => 'eval_loss' in m);
    assert.deepEqual(
      gens.map((m) => m.step),
      [perEpoch, 2 * perEpoch],
      'generation scores at each epoch end',
    );
    assert.deepEqual(
      evals.map((m) => m.step),
      [perEpoch, 2 * perEpoch],
    );
    const state = JSON.parse(readFileSync(join(out, 'trainer_state.json'), 'utf8')) as {
      best_global_step: number;
      best_metric: number;
      best_model_checkpoint: string;
    };
    const best = gens.reduce((a, g) => (g.gen_f1! > a.gen_f1! ? g : a));
    assert.equal(state.best_global_step, best.step);
    assert.equal(state.best_metric, best.gen_f1);

    // the model card
    const card = readFileSync(join(out, 'adapter', 'README.md'), 'utf8');
    const fm = parseFrontMatter(card);
    assert.equal(fm.base_model, 'tiny');
    assert.equal(fm.library_name, 'peft');
    assert.equal(fm.pipeline_tag, 'text-generation');
    assert.deepEqual(fm.metrics, ['precision', 'recall', 'f1', 'loss']);
    assert.ok((fm.tags as string[]).includes('ddi-triplets'));
    assert.deepEqual(fm.datasets, ['slice.jsonl']);
    const bestEval = evals.find((e) => e.step === best.step)!;
    const row = (name: string): string => card.split('\n').find((l) => l.startsWith(`| ${name} |`)) ?? '';
    assert.equal(row('F1 (micro)'), `| F1 (micro) | ${best.gen_f1!.toFixed(3)} |`);
    assert.equal(row('precision (micro)'), `| precision (micro) | ${best.gen_precision!.toFixed(3)} |`);
    assert.equal(row('loss (gold answers)'), `| loss (gold answers) | ${bestEval.eval_loss!.toFixed(4)} |`);
    assert.ok(
      card.includes(`| train | \`train.jsonl\` | ${split.counts.train!.total} |`),
      'train examples = split-report count',
    );
    assert.ok(
      card.includes(
        `train ${split.counts.train!.total}, validation ${split.counts.validation!.total}, test ${split.counts.test!.total}`,
      ),
    );
    assert.ok(card.includes('Leakage check: passed'));
    assert.ok(card.includes(`${2 * perEpoch} of ${2 * perEpoch} updates`));
    assert.ok(/Not for clinical decisions/.test(card));
    assert.ok(card.includes('| neftune_noise_alpha | 5 |'));
    // medlora eval --compare base --compare <adapter> rewrites the evaluation section with its scores
    r = spawnSync(
      process.execPath,
      [
        BIN,
        'eval',
        '--model',
        model,
        '--data',
        join(work, 'ddi', 'test.jsonl'),
        '--compare',
        'base',
        '--compare',
        `tuned=${join(out, 'adapter')}`,
        '--max-new-tokens',
        '6',
        '--out',
        join(work, 'eval'),
        '--json',
        '--quiet',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const scores = JSON.parse(readFileSync(join(work, 'eval', 'scores.json'), 'utf8')) as {
      runs: Array<{ name: string; metrics: { micro: { f1: number } }; test_loss: number }>;
    };
    const card2 = readFileSync(join(out, 'adapter', 'README.md'), 'utf8');
    const row2 = (name: string): string => card2.split('\n').find((l) => l.startsWith(`| ${name} |`)) ?? '';
    assert.deepEqual(
      scores.runs.map((x) => x.name),
      ['base', 'tuned'],
    );
    assert.equal(
      row2('F1 (micro)'),
      `| F1 (micro) | ${scores.runs.map((x) => x.metrics.micro.f1.toFixed(3)).join(' | ')} |`,
    );
    assert.equal(
      row2('loss (gold answers)'),
      `| loss (gold answers) | ${scores.runs.map((x) => x.test_loss.toFixed(4)).join(' | ')} |`,
    );
    assert.ok(card2.includes('| metric | base | tuned |'));
    assert.equal(card2.split('## Evaluation').length, 2);
    assert.deepEqual(parseFrontMatter(card2), fm);
    assert.equal(updateCardEvaluation(work, { data: 'x', source: 'y', runs: [] }), false, 'no card, nothing written');

    // TensorBoard files beside the run, with the config text
    const runs = readdirSync(join(out, 'runs'));
    const ev = readEventsFile(join(out, 'runs', runs[0]!, readdirSync(join(out, 'runs', runs[0]!))[0]!));
    const text = ev.flatMap((e) => e.values).find((v) => v.tag === 'config/text_summary')!;
    assert.equal(
      (JSON.parse(text.strings![0]!) as { lora: { target_modules: string } }).lora.target_modules,
      'all-linear',
    );
    assert.ok(ev.some((e) => e.values.some((v) => v.tag === 'eval/gen_f1')));
    assert.ok(existsSync(join(out, 'adapter', 'adapter_config.json')));
    console.log(
      `  ${2 * perEpoch} updates; gen_f1 ${gens.map((g) => g.gen_f1!.toFixed(3)).join(', ')}; best step ${state.best_global_step}`,
    );
  },
);

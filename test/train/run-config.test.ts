// The issue-17 keys as flags (short forms, typed by the schema) and in config.resolved.json form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig } from '../../src/train/config.js';

const FILE = { model: 'm', output_dir: 'o', data: { train: 't.jsonl', validation: 'v.jsonl' } };

test('run keys as flags: report_to, strategies, best model, early stopping, NEFTune, scheduler kwargs, resume', () => {
  const c = resolveConfig(
    FILE,
    [
      ['report_to', 'tensorboard'],
      ['eval_strategy', 'steps'],
      ['eval_steps', '10'],
      ['save_strategy', 'steps'],
      ['save_steps', '20'],
      ['load_best_model_at_end', 'true'],
      ['metric_for_best_model', 'eval_loss'],
      ['early_stopping_patience', '3'],
      ['early_stopping_threshold', '0.01'],
      ['neftune_noise_alpha', '5'],
      ['lr_scheduler_type', 'warmup_stable_decay'],
      ['lr_scheduler_kwargs', '{"num_decay_steps": 30}'],
      ['resume_from_checkpoint', 'true'],
      ['target_modules', 'all-linear'],
      ['logging_strategy', 'epoch'],
    ],
    'cfg.yaml',
  );
  const t = c.training;
  assert.deepEqual(t.report_to, ['tensorboard']);
  assert.equal(t.eval_strategy, 'steps');
  assert.equal(t.load_best_model_at_end, true);
  assert.equal(t.greater_is_better, false); // "eval_loss" ends with "loss" (HF rule)
  assert.equal(t.early_stopping_patience, 3);
  assert.equal(t.neftune_noise_alpha, 5);
  assert.deepEqual(t.lr_scheduler_kwargs, {
    num_decay_steps: 30,
    num_stable_steps: null,
    warmup_type: 'linear',
    decay_type: 'cosine',
    min_lr_ratio: 0,
    num_cycles: 0.5,
  });
  assert.equal(t.resume_from_checkpoint, true);
  assert.equal(c.lora.target_modules, 'all-linear');
  assert.equal(t.logging_strategy, 'epoch');
  assert.equal(
    resolveConfig(FILE, [['resume_from_checkpoint', 'runs/x/checkpoint-4']]).training.resume_from_checkpoint,
    'runs/x/checkpoint-4',
  );
  assert.throws(
    () => resolveConfig(FILE, [['report_to', 'wandb']], 'cfg.yaml'),
    /cfg\.yaml \(with flags\): training\.report_to: wandb is not supported/,
  );
  assert.throws(
    () => resolveConfig(FILE, [['eval_strategy', 'sometimes']]),
    /training\.eval_strategy must be one of steps, epoch, no/,
  );
  // a resolved config (config.resolved.json) validates again to itself
  assert.deepEqual(resolveConfig(JSON.parse(JSON.stringify(c)) as Record<string, unknown>, []), c);
  // defaults keep medlora's behaviour: no strategy, no reporting, no NEFTune
  const d = resolveConfig(FILE, []).training;
  assert.deepEqual(
    [
      d.report_to,
      d.eval_strategy,
      d.save_strategy,
      d.logging_strategy,
      d.neftune_noise_alpha,
      d.fp16,
      d.resume_from_checkpoint,
      d.metric_for_best_model,
    ],
    [[], null, null, null, null, false, null, null],
  );
});

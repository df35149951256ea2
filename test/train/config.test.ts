// Config schema: the example accepted as written, defaults, precedence, and the error messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfigFile, resolveConfig } from '../../src/train/config.js';
import { MedloraError } from '../../src/util/errors.js';

const EXAMPLE = `model: path/to/model
data: { train: train.jsonl, validation: val.jsonl }
lora: { r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: [q_proj, v_proj], init_adapter: path/to/adapter }
training: { learning_rate: 5.0e-3, lr_scheduler_type: linear, warmup_steps: 2, max_steps: 12,
            per_device_train_batch_size: 2, gradient_accumulation_steps: 1, weight_decay: 0.01,
            max_grad_norm: 1.0, optim: adamw_torch, logging_steps: 1, shuffle: false, seed: 0 }
output_dir: runs/example
`;

function tmpFile(name: string, text: string): string {
  const d = mkdtempSync(join(tmpdir(), 'medlora-cfg-'));
  const f = join(d, name);
  writeFileSync(f, text);
  return f;
}

test('the issue example is accepted exactly as written; unspecified keys get HF defaults', () => {
  const f = tmpFile('ex.yaml', EXAMPLE);
  const c = resolveConfig(readConfigFile(f), [], f);
  assert.equal(c.model, 'path/to/model');
  assert.equal(c.lora.init_adapter, 'path/to/adapter');
  assert.deepEqual(c.lora.target_modules, ['q_proj', 'v_proj']);
  assert.equal(c.training.learning_rate, 5e-3);
  assert.equal(c.training.shuffle, false);
  // HF TrainingArguments defaults: adam_beta2 0.999, adam_epsilon 1e-8, save_steps 500
  assert.equal(c.training.adam_beta2, 0.999);
  assert.equal(c.training.adam_epsilon, 1e-8);
  assert.equal(c.training.save_steps, 500);
  assert.equal(c.data.validation, 'val.jsonl');
});

test('flags override the file: dotted, short forms, --output, typed values', () => {
  const f = tmpFile('ex.yaml', EXAMPLE);
  const c = resolveConfig(
    readConfigFile(f),
    [
      ['training.max_steps', '5'],
      ['learning_rate', '1e-4'],
      ['output', '/tmp/x'],
      ['model', 'm2'],
      ['target_modules', 'q_proj,k_proj'],
      ['bf16', 'true'],
      ['eval_steps', 'null'],
    ],
    f,
  );
  assert.equal(c.training.max_steps, 5);
  assert.equal(c.training.learning_rate, 1e-4);
  assert.equal(c.output_dir, '/tmp/x');
  assert.equal(c.model, 'm2');
  assert.deepEqual(c.lora.target_modules, ['q_proj', 'k_proj']);
  assert.equal(c.training.bf16, true);
  assert.equal(c.training.eval_steps, null);
});

test('unknown keys are rejected with a did-you-mean hint naming the file and key path', () => {
  const f = tmpFile('bad.yaml', EXAMPLE.replace('max_steps: 12', 'max_step: 12'));
  assert.throws(
    () => resolveConfig(readConfigFile(f), [], f),
    (e: Error) =>
      e.message.includes(f) && /unknown key training\.max_step .*did you mean training\.max_steps/.test(e.message),
  );
  const g = tmpFile('bad2.yaml', `${EXAMPLE}learning_rate: 0.1\n`);
  assert.throws(
    () => resolveConfig(readConfigFile(g), [], g),
    /unknown key learning_rate \(did you mean training\.learning_rate\?\)/,
  );
  assert.throws(
    () => resolveConfig(readConfigFile(tmpFile('ok.yaml', EXAMPLE)), [['training.lerning_rate', '1']]),
    /training\.lerning_rate: unknown config key \(did you mean training\.learning_rate/,
  );
});

test('bad values name the key and what was expected; required keys say what they are', () => {
  const f = tmpFile('v.yaml', EXAMPLE.replace('optim: adamw_torch', 'optim: sgd'));
  assert.throws(
    () => resolveConfig(readConfigFile(f), [], f),
    /training\.optim must be one of adamw_torch, adamw_8bit, paged_adamw_8bit, got "sgd"/,
  );
  const g = tmpFile('v2.yaml', EXAMPLE.replace('r: 4,', 'r: 2.5,'));
  assert.throws(() => resolveConfig(readConfigFile(g), [], g), /lora\.r must be an integer >= 1, got 2.5/);
  const h = tmpFile('v3.yaml', EXAMPLE.replace('model: path/to/model\n', ''));
  // a library error names the key (the CLI prints it as the flag: test/cli/flag-words.test.ts)
  assert.throws(
    () => resolveConfig(readConfigFile(h), [], h),
    (e: unknown) =>
      e instanceof MedloraError && /model is required \(Hugging Face/.test(e.message) && e.field === 'model',
  );
  assert.throws(
    () => resolveConfig(readConfigFile(h), [['max_steps', 'ten']], h),
    /Error: training\.max_steps: expected an integer/,
  );
  const i = tmpFile('v4.yaml', 'model: [unclosed');
  assert.throws(
    () => readConfigFile(i),
    (e: Error) => e.message.startsWith(`${i}: not valid YAML`),
  );
  const j = tmpFile('v5.yaml', `${EXAMPLE.replace('warmup_steps: 2,', 'warmup_steps: 2, warmup_ratio: 0.1,')}`);
  assert.throws(() => resolveConfig(readConfigFile(j), [], j), /warmup_steps or training\.warmup_ratio, not both/);
});

test('JSON config files are read too', () => {
  const f = tmpFile(
    'c.json',
    JSON.stringify({ model: 'm', output_dir: 'o', data: { train: 't.jsonl' }, training: { max_steps: 3 } }),
  );
  const c = resolveConfig(readConfigFile(f), [], f);
  assert.equal(c.training.max_steps, 3);
  assert.equal(c.lora.r, 8); // PEFT default
});

// The recipe presets in configs/: each validates once --model and --data.train are given, refuses to start without
// --model (naming the flag), and holds the recipe's numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { readConfigFile, resolveConfig, type TrainConfig } from '../../src/train/config.js';

const DIR = join(packageRoot(), 'configs');
const load = (name: string): TrainConfig =>
  resolveConfig(
    readConfigFile(join(DIR, name)),
    [
      ['model', '/m'],
      ['data.train', '/t.jsonl'],
    ],
    name,
  );

test('every preset resolves with --model and --data.train, and requires model', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
  assert.equal(files.length, 7);
  for (const f of files) {
    assert.equal(load(f).model, '/m');
    assert.throws(
      () => resolveConfig(readConfigFile(join(DIR, f)), [['data.train', '/t.jsonl']], f),
      /model is required \(Hugging Face checkpoint folder/,
    );
  }
});

test("presets carry the recipes' settings", () => {
  const ddi = load('ddi-llama31-8b.yaml');
  assert.deepEqual([ddi.lora.r, ddi.lora.lora_alpha, ddi.lora.lora_dropout, ddi.data.max_length], [8, 16, 0.05, 400]);
  assert.deepEqual(ddi.lora.target_modules, [
    'q_proj',
    'k_proj',
    'v_proj',
    'o_proj',
    'gate_proj',
    'up_proj',
    'down_proj',
    'lm_head',
  ]);
  const t = ddi.training;
  assert.deepEqual(
    [
      t.per_device_train_batch_size,
      t.gradient_accumulation_steps,
      t.learning_rate,
      t.warmup_steps,
      t.max_steps,
      t.optim,
      t.bf16,
      t.gradient_checkpointing,
      t.save_steps,
      t.eval_steps,
    ],
    [2, 4, 2.5e-5, 5, 2000, 'paged_adamw_8bit', true, true, 25, 50],
  );
  const ner = load('ner-llama32-3b.yaml');
  assert.deepEqual(
    [
      ner.lora.r,
      ner.lora.lora_alpha,
      (ner.lora.target_modules as string[]).length,
      ner.quantization.load_in_4bit,
      ner.training.per_device_train_batch_size,
      ner.training.gradient_accumulation_steps,
      ner.training.learning_rate,
      ner.training.lr_scheduler_type,
      ner.training.warmup_ratio,
      ner.training.weight_decay,
      ner.training.num_train_epochs,
      ner.data.max_length,
    ],
    [16, 32, 7, true, 4, 4, 5e-5, 'cosine', 0.03, 0.01, 5, 2048],
  );
  for (const f of ['ade-email-llama2-7b-lora.yaml', 'ade-email-stablelm-3b-lora.yaml']) {
    const a = load(f);
    assert.deepEqual(
      [
        a.lora.r,
        a.training.learning_rate,
        a.training.per_device_train_batch_size * a.training.gradient_accumulation_steps,
        a.training.num_train_epochs,
        a.training.warmup_steps,
        a.training.weight_decay,
      ],
      [8, 3e-4, 16, 5, 100, 0.01],
    );
  }
  const g = load('medqa-gpt2.yaml');
  assert.deepEqual(
    [
      g.lora.r,
      g.lora.lora_alpha,
      g.lora.target_modules,
      g.training.per_device_train_batch_size,
      g.training.gradient_accumulation_steps,
      g.training.learning_rate,
      g.training.num_train_epochs,
      g.data.max_length,
    ],
    [8, 16, ['c_attn'], 4, 8, 1e-4, 3, 512],
  );
});

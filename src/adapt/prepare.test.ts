// prepareForTraining: LoRA, QLoRA, starting from an adapter, full fine-tuning, and the refused combinations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../tensor/index.js';
import { TinyModel } from '../../test/adapt/tiny.js';
import { applyLora, loraModules } from './apply.js';
import { Nf4Linear } from './nf4-linear.js';
import { saveAdapter } from './peft-io.js';
import { prepareForTraining } from './prepare.js';

const lora = { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: ['q_proj', 'down_proj'] };

test('prepareForTraining: lora, qlora (NF4 base under the adapters), init_adapter, full', () => {
  T.manualSeed(41);
  const a = prepareForTraining(new TinyModel(64, 20), { finetuning: 'lora', lora });
  assert.equal(a.wrapped.length, 4);
  // r * (in + out): q_proj 64->64 and down_proj 128->64, two layers
  assert.equal(a.summary.trainable, 2 * (2 * (64 + 64) + 2 * (128 + 64)));

  const m = new TinyModel(64, 20);
  const q = prepareForTraining(m, { finetuning: 'lora', lora, load_in_4bit: true });
  assert.equal(q.quantization!.layers.length, 8);
  assert.ok(loraModules(m).every(([, l]) => l.base_layer instanceof Nf4Linear), 'LoRA wraps the 4-bit layers');
  assert.equal(q.summary.trainable, a.summary.trainable);

  const dir = mkdtempSync(join(tmpdir(), 'medlora-prep-'));
  try {
    const src = new TinyModel(64, 20);
    applyLora(src, { r: 3, lora_alpha: 9, lora_dropout: 0, target_modules: ['v_proj'], init: false });
    saveAdapter(src, dir);
    const r = prepareForTraining(new TinyModel(64, 20), { finetuning: 'lora', lora: { ...lora, init_adapter: dir } });
    assert.equal(r.adapterConfig!.r, 3, 'the adapter folder\'s settings win');
    assert.deepEqual(r.wrapped, ['model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.v_proj']);
  } finally { rmSync(dir, { recursive: true, force: true }); }

  const full = prepareForTraining(new TinyModel(64, 20), { finetuning: 'full' });
  assert.equal(full.summary.trainable, full.summary.total);
  assert.throws(() => prepareForTraining(new TinyModel(), { finetuning: 'full', load_in_4bit: true }), /cannot train 4-bit weights/);
  assert.throws(() => prepareForTraining(new TinyModel(), { finetuning: 'lora' }), /needs the lora settings/);
});

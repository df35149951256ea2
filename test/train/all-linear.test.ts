// target_modules: all-linear wraps exactly the modules PEFT 0.21 wraps (every linear / Conv1D but the output head),
// per fixture architecture (test/fixtures/run-keys/all_linear.json, made with peft get_peft_model).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { loadModel } from '../../src/model/load.js';
import { applyLora } from '../../src/adapt/apply.js';
import { parseOverrideValue, validateConfig } from '../../src/train/config.js';

const want = JSON.parse(
  readFileSync(join(packageRoot(), 'test', 'fixtures', 'run-keys', 'all_linear.json'), 'utf8'),
) as { models: Record<string, string[]> };

for (const [name, modules] of Object.entries(want.models)) {
  test(
    `all-linear on ${name}: the same ${modules.length} modules as PEFT`,
    { skip: !hasShared() && 'needs ../shared' },
    () => {
      const m = loadModel(sharedPath('fixtures', 'reference', name));
      const got = applyLora(m, { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: 'all-linear' });
      assert.deepEqual([...got].sort(), modules);
      assert.ok(!got.some((p) => p.endsWith('lm_head')));
      m.dispose();
    },
  );
}

test('all-linear is accepted by the config (file and flag, any case as PEFT lowercases it)', () => {
  assert.equal(parseOverrideValue('lora.target_modules', 'all-linear'), 'all-linear');
  const c = validateConfig(
    { model: 'm', output_dir: 'o', data: { train: 't' }, lora: { target_modules: 'ALL-LINEAR' } },
    'test',
  );
  assert.equal(c.lora.target_modules, 'all-linear');
});

// The architectures built from real published configs (../shared/fixtures/hf, no weights needed: parameters are
// declared, not allocated) have exactly the parameter counts their publishers state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModelConfig } from '../../src/io/config.js';
import { buildModel } from '../../src/model/registry.js';
import { declaredParameters } from '../../src/model/layers.js';
import { sharedPath } from '../../src/util/paths.js';
import { skipNoShared } from './fixtures.js';

// published parameter counts (model cards / safetensors metadata "total" parameters); tied heads counted once
const PUBLISHED: Array<[string, number]> = [
  ['Llama-2-7b-hf', 6_738_415_616],
  ['Llama-2-70b-chat-hf', 68_976_648_192],
  ['Llama-3.1-8B', 8_030_261_248],
  ['Llama-3.2-1B', 1_235_814_400],
  ['Mistral-7B-v0.1', 7_241_732_096],
  ['Qwen2.5-0.5B-Instruct', 494_032_768],
  ['SmolLM2-135M-Instruct', 134_515_008],
  ['gpt2', 124_439_808],
  ['stablelm-zephyr-3b', 2_795_443_200],
];

for (const [name, count] of PUBLISHED) {
  test(
    `${name}: declared parameters add up to the published ${count.toLocaleString('en')}`,
    { skip: skipNoShared },
    () => {
      const { config } = loadModelConfig(sharedPath('fixtures', 'hf', name));
      const m = buildModel(config);
      try {
        let n = 0;
        for (const { shape } of declaredParameters(m).values()) n += shape.reduce((a, b) => a * b, 1);
        assert.equal(n, count);
      } finally {
        m.dispose();
      }
    },
  );
}

test('every key of a built model is an HF key (spot checks per family)', { skip: skipNoShared }, () => {
  const keys = (name: string): string[] => {
    const m = buildModel(loadModelConfig(sharedPath('fixtures', 'hf', name)).config);
    try {
      return [...declaredParameters(m).keys()];
    } finally {
      m.dispose();
    }
  };
  const q = keys('Qwen2.5-0.5B-Instruct');
  assert.ok(q.includes('model.layers.23.self_attn.q_proj.bias'));
  assert.ok(!q.includes('model.layers.0.self_attn.o_proj.bias'));
  assert.ok(!q.includes('lm_head.weight')); // tied
  const g = keys('gpt2');
  assert.ok(g.includes('transformer.h.11.attn.c_attn.weight'));
  assert.ok(g.includes('transformer.wpe.weight'));
  const s = keys('stablelm-zephyr-3b');
  assert.ok(s.includes('model.layers.31.post_attention_layernorm.bias'));
  assert.ok(s.includes('lm_head.weight'));
});

// transformers 5 spellings and the "every key accounted for" rule of io/config.ts: rope_parameters / dtype read for
// every architecture (files re-saved by transformers 5.18, test/fixtures/hf5), and each key that changes the math but is
// not implemented is an error naming the key and the file; unknown keys are a visible warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadModelConfig,
  parseModelConfig,
  type Gpt2Config,
  type LlamaLikeConfig,
  type StableLmConfig,
} from '../../src/io/config.js';
import { setWarningHandler } from '../../src/util/warn.js';
import { packageRoot } from '../../src/util/paths.js';

const hf5 = (d: string): string => join(packageRoot(), 'test', 'fixtures', 'hf5', d);
const base = { vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2 };

test('transformers 5 configs: rope_parameters and dtype are read (llama, llama3, linear, qwen2, mistral, stablelm, gpt2)', () => {
  const l3 = loadModelConfig(hf5('llama3-tiny-tied')).config as LlamaLikeConfig;
  assert.equal(l3.rope_theta, 500000);
  assert.deepEqual(l3.rope_scaling, {
    rope_type: 'llama3',
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 16,
  });
  assert.equal(l3.torch_dtype, 'float32');
  const lin = loadModelConfig(hf5('llama-tiny-linear')).config as LlamaLikeConfig;
  assert.deepEqual(lin.rope_scaling, { rope_type: 'linear', factor: 4 });
  const q = loadModelConfig(hf5('qwen2-tiny')).config as LlamaLikeConfig;
  assert.equal(q.rope_theta, 1000000);
  assert.equal(q.rope_scaling, null);
  assert.equal(q.sliding_window, null);
  const m = loadModelConfig(hf5('mistral-tiny')).config as LlamaLikeConfig;
  assert.equal(m.sliding_window, 64);
  const s = loadModelConfig(hf5('stablelm-tiny')).config as StableLmConfig;
  assert.equal(s.partial_rotary_factor, 0.25);
  assert.equal(s.rope_theta, 10000);
  const g = loadModelConfig(hf5('gpt2-tiny'));
  assert.equal((g.config as Gpt2Config).n_inner, 256);
  for (const d of [
    'llama-tiny',
    'llama3-tiny-tied',
    'llama-tiny-linear',
    'qwen2-tiny',
    'mistral-tiny',
    'stablelm-tiny',
    'gpt2-tiny',
  ]) {
    const p = loadModelConfig(hf5(d));
    assert.deepEqual(p.warnings, [], `${d}: ${p.warnings.join('; ')}`);
  }
});

test('rope_parameters precedence follows transformers 5 (dict over top level; llama3 original_max defaults to max_position_embeddings)', () => {
  const c = parseModelConfig(
    {
      model_type: 'llama',
      ...base,
      rope_theta: 10000,
      max_position_embeddings: 512,
      rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4 },
    },
    'x/config.json',
  );
  const l = c.config as LlamaLikeConfig;
  assert.equal(l.rope_theta, 500000);
  assert.equal(l.rope_scaling?.rope_type === 'llama3' && l.rope_scaling.original_max_position_embeddings, 512);
  assert.match(
    c.warnings.join('\n'),
    /x\/config\.json: rope_parameters\.rope_theta 500000 and "rope_theta" 10000 disagree/,
  );
  const q = parseModelConfig({
    model_type: 'qwen2',
    ...base,
    rope_parameters: { rope_type: 'default', rope_theta: 1e6 },
  }).config as LlamaLikeConfig;
  assert.equal(q.rope_theta, 1e6);
  const t = parseModelConfig({ model_type: 'llama', ...base, dtype: 'bfloat16', torch_dtype: 'float32' });
  assert.equal(t.config.torch_dtype, 'bfloat16');
  assert.match(t.warnings.join('\n'), /"dtype" "bfloat16" and "torch_dtype" "float32" disagree; using "dtype"/);
});

test('keys that change the math and are not implemented are errors naming key and file', () => {
  const f = 'm/config.json';
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [
      { model_type: 'llama', ...base, rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 1e4 } },
      /m\/config\.json: rope_parameters\.rope_type "yarn" is not supported/,
    ],
    [
      { model_type: 'llama', ...base, rope_parameters: { rope_type: 'dynamic', factor: 2 } },
      /rope_parameters\.rope_type "dynamic"/,
    ],
    [
      { model_type: 'llama', ...base, rope_parameters: { rope_type: 'linear', factor: 2, attention_factor: 1.2 } },
      /m\/config\.json: rope_parameters\.attention_factor is not understood for rope_type "linear"/,
    ],
    [
      {
        model_type: 'llama',
        ...base,
        rope_scaling: { rope_type: 'linear', factor: 2 },
        rope_parameters: { rope_type: 'default', rope_theta: 1e4 },
      },
      /both "rope_scaling" and "rope_parameters"/,
    ],
    [
      {
        model_type: 'llama',
        ...base,
        rope_parameters: { full_attention: { rope_type: 'default' }, sliding_attention: { rope_type: 'default' } },
      },
      /per-layer-type rotary settings/,
    ],
    [
      { model_type: 'llama', ...base, partial_rotary_factor: 0.5 },
      /m\/config\.json: "partial_rotary_factor" = 0\.5 \(partial rotary embeddings\) is not supported for model_type llama/,
    ],
    [
      { model_type: 'qwen2', ...base, rope_parameters: { rope_type: 'default', partial_rotary_factor: 0.5 } },
      /partial_rotary_factor 0\.5 is not supported for model_type qwen2/,
    ],
    [
      { model_type: 'llama', ...base, attn_logit_softcapping: 50 },
      /m\/config\.json: "attn_logit_softcapping" = 50 \(attention logit soft-capping \(Gemma-2\)\) is not supported for model_type llama/,
    ],
    [
      { model_type: 'mistral', ...base, num_key_value_heads: 2, final_logit_softcapping: 30 },
      /"final_logit_softcapping" = 30/,
    ],
    [{ model_type: 'llama', ...base, qk_layernorm: true }, /"qk_layernorm" = true/],
    [{ model_type: 'stablelm', ...base, qk_layernorm: true }, /m\/config\.json: qk_layernorm=true/],
    [
      { model_type: 'llama', ...base, sliding_window: 128 },
      /"sliding_window" = 128 \(sliding-window attention\) is not supported for model_type llama/,
    ],
    [{ model_type: 'llama', ...base, layer_types: ['full_attention', 'sliding_attention'] }, /"layer_types"/],
    [{ model_type: 'llama', ...base, rope_interleaved: true }, /"rope_interleaved" = true/],
    [{ model_type: 'llama', ...base, quantization_config: { quant_method: 'gptq' } }, /"quantization_config"/],
    [
      { model_type: 'gpt2', vocab_size: 10, n_embd: 8, n_layer: 1, n_head: 2, add_cross_attention: true },
      /"add_cross_attention" = true/,
    ],
    [
      { model_type: 'gpt2', vocab_size: 10, n_embd: 8, n_layer: 1, n_head: 2, scale_attn_by_inverse_layer_idx: true },
      /m\/config\.json: scale_attn_by_inverse_layer_idx=true is not supported/,
    ],
    [
      {
        model_type: 'gpt2',
        vocab_size: 10,
        n_embd: 8,
        n_layer: 1,
        n_head: 2,
        rope_parameters: { rope_type: 'default' },
      },
      /"rope_parameters" .* not supported for model_type gpt2/,
    ],
    [{ model_type: 'qwen2', ...base, layer_types: ['full_attention'] }, /"layer_types" must be a list of 2/],
    // MistralForCausalLM has no biases and Qwen2's MLP none (transformers ignores these keys there): not silently built
    [
      { model_type: 'mistral', ...base, num_key_value_heads: 2, attention_bias: true },
      /"attention_bias" = true \(attention projection biases\) is not supported for model_type mistral/,
    ],
    [
      { model_type: 'qwen2', ...base, mlp_bias: true },
      /"mlp_bias" = true \(MLP biases\) is not supported for model_type qwen2/,
    ],
    [{ model_type: 'stablelm', ...base, mlp_bias: true }, /"mlp_bias" = true/],
  ];
  for (const [raw, re] of cases) assert.throws(() => parseModelConfig(raw, f), re, JSON.stringify(raw));
  // neutral values of the same keys are fine
  for (const raw of [
    { attn_logit_softcapping: null },
    { qk_layernorm: false },
    { sliding_window: null },
    { partial_rotary_factor: 1.0 },
    { layer_types: ['full_attention', 'full_attention'] },
    { rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 1 } },
  ]) {
    assert.doesNotThrow(() => parseModelConfig({ model_type: 'llama', ...base, ...raw }, f), JSON.stringify(raw));
  }
});

test('Qwen2 sliding window in use (use_sliding_window + sliding layers) is carried; otherwise full attention', () => {
  const on = { model_type: 'qwen2', ...base, use_sliding_window: true, sliding_window: 32 };
  assert.equal((parseModelConfig({ ...on, max_window_layers: 1 }).config as LlamaLikeConfig).sliding_window, 32); // layer 1 slides
  assert.equal((parseModelConfig({ ...on, max_window_layers: 28 }).config as LlamaLikeConfig).sliding_window, null); // none slides
  assert.equal(
    (parseModelConfig({ ...on, layer_types: ['full_attention', 'sliding_attention'] }).config as LlamaLikeConfig)
      .sliding_window,
    32,
  );
  assert.equal(
    (
      parseModelConfig({ ...on, use_sliding_window: false, layer_types: ['sliding_attention', 'sliding_attention'] })
        .config as LlamaLikeConfig
    ).sliding_window,
    null,
  );
});

test('unknown keys are a visible warning naming them and the file (stderr, not stdout)', () => {
  const got: string[] = [];
  const prev = setWarningHandler((m) => got.push(m));
  const d = mkdtempSync(join(tmpdir(), 'medlora-cfg-'));
  try {
    mkdirSync(join(d, 'm'));
    writeFileSync(
      join(d, 'm', 'config.json'),
      JSON.stringify({ model_type: 'llama', ...base, rope_theta: 1e4, mystery_gain: 2.0 }),
    );
    const p = loadModelConfig(join(d, 'm'));
    assert.deepEqual(p.unknownKeys, ['mystery_gain']);
    assert.equal(got.length, 1);
    assert.match(got[0]!, /m\/config\.json: unknown key "mystery_gain" ignored/);
    setWarningHandler(prev);
    // through the CLI: the warning is on stderr, the --json document alone on stdout
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `import('${join(packageRoot(), 'dist', 'src', 'io', 'config.js')}').then((m) => { m.loadModelConfig(${JSON.stringify(join(d, 'm'))}); console.log('{}'); })`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.stdout.trim(), '{}');
    assert.match(r.stderr, /^medlora: warning: .*m\/config\.json: unknown key "mystery_gain"/);
  } finally {
    setWarningHandler(prev);
    rmSync(d, { recursive: true, force: true });
  }
});

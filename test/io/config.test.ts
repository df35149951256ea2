// config.json parsing over every fixture config (values checked against the files and HF class defaults written out
// here), plus the llama3 rope inverse frequencies against hand computation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import {
  loadModelConfig,
  parseModelConfig,
  rotaryDim,
  type LlamaLikeConfig,
  type StableLmConfig,
  type Gpt2Config,
} from '../../src/io/config.js';
import { defaultInvFreq, llama3InvFreq, ropeInvFreq } from '../../src/io/rope.js';
import { assertClose } from '../../src/util/close.js';

const skip = hasShared() ? false : 'no ../shared fixtures';
const hf = (d: string): string => sharedPath('fixtures', 'hf', d);

test('every fixture config parses or is rejected clearly', { skip }, () => {
  const dirs = [
    ...readdirSync(sharedPath('fixtures', 'reference'))
      .filter((d) => !d.includes('.'))
      .map((d) => sharedPath('fixtures', 'reference', d)),
    ...[
      'Llama-2-70b-chat-hf',
      'Llama-2-7b-hf',
      'Llama-3.1-8B',
      'Llama-3.2-1B',
      'Mistral-7B-v0.1',
      'Qwen2.5-0.5B-Instruct',
      'SmolLM2-135M-Instruct',
      'gpt2',
      'stablelm-zephyr-3b',
      'stories260K-hf',
    ].map(hf),
  ];
  for (const d of dirs) {
    const { config, unknownKeys } = loadModelConfig(d);
    console.log(`  ${d.split('/').slice(-1)[0]}: ${config.model_type}, unknown keys: ${unknownKeys.join(', ') || '-'}`);
  }
  assert.throws(
    () => loadModelConfig(hf('pythia-70m-gpt-neox-tokenizer')),
    /model_type "gpt_neox" is not supported; supported: llama, mistral, qwen2, stablelm, gpt2/,
  );
});

test('Llama-3.1-8B: llama3 rope scaling, GQA, untied', { skip }, () => {
  const c = loadModelConfig(hf('Llama-3.1-8B')).config as LlamaLikeConfig;
  assert.equal(c.model_type, 'llama');
  assert.equal(c.head_dim, 128); // 4096 / 32
  assert.equal(c.num_key_value_heads, 8);
  assert.equal(c.rope_theta, 500000);
  assert.deepEqual(c.rope_scaling, {
    rope_type: 'llama3',
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  });
  assert.equal(c.tie_word_embeddings, false);
  assert.deepEqual(c.eos_token_id, [128001]);
  assert.equal(c.qkv_bias, false);
  assert.equal(c.mlp_bias, false);
  assert.equal(c.torch_dtype, 'bfloat16');
});

test('Llama-2-70b GQA, Llama-2-7b MHA, Llama-3.2-1B explicit head_dim and tied', { skip }, () => {
  const c70 = loadModelConfig(hf('Llama-2-70b-chat-hf')).config as LlamaLikeConfig;
  assert.equal(c70.num_attention_heads, 64);
  assert.equal(c70.num_key_value_heads, 8);
  assert.equal(c70.head_dim, 128);
  assert.equal(c70.rope_scaling, null);
  assert.equal(c70.attention_bias, false); // absent in this 4.31 config: default false
  const c7 = loadModelConfig(hf('Llama-2-7b-hf')).config as LlamaLikeConfig;
  assert.equal(c7.num_key_value_heads, 32);
  const c1 = loadModelConfig(hf('Llama-3.2-1B')).config as LlamaLikeConfig;
  assert.equal(c1.head_dim, 64);
  assert.equal(c1.tie_word_embeddings, true);
  assert.equal(c1.rope_scaling?.factor, 32);
});

test('Mistral sliding window, Qwen2.5 biases and tying, SmolLM2', { skip }, () => {
  const m = loadModelConfig(hf('Mistral-7B-v0.1')).config as LlamaLikeConfig;
  assert.equal(m.model_type, 'mistral');
  assert.equal(m.sliding_window, 4096);
  assert.equal(m.num_key_value_heads, 8);
  const q = loadModelConfig(hf('Qwen2.5-0.5B-Instruct')).config as LlamaLikeConfig;
  assert.equal(q.model_type, 'qwen2');
  assert.equal(q.head_dim, 64); // 896 / 14
  assert.equal(q.qkv_bias, true);
  assert.equal(q.o_bias, false);
  assert.equal(q.tie_word_embeddings, true);
  assert.equal(q.sliding_window, null); // use_sliding_window false
  assert.equal(q.rms_norm_eps, 1e-6);
  assert.equal(q.rope_theta, 1000000);
  const s = loadModelConfig(hf('SmolLM2-135M-Instruct'));
  assert.equal((s.config as LlamaLikeConfig).head_dim, 64); // 576 / 9
  // transformers.js_config describes the file only; rope_interleaved=false is the neutral value (true is an error)
  assert.deepEqual(s.unknownKeys, []);
});

test('stablelm_epoch (zephyr-3b) maps norm_eps / rope_pct', { skip }, () => {
  const c = loadModelConfig(hf('stablelm-zephyr-3b')).config as StableLmConfig;
  assert.equal(c.model_type, 'stablelm');
  assert.equal(c.layer_norm_eps, 1e-5);
  assert.equal(c.partial_rotary_factor, 0.25);
  assert.equal(c.head_dim, 80); // 2560 / 32
  assert.equal(rotaryDim(c), 20); // 80 * 0.25
  assert.equal(c.use_qkv_bias, false);
  // the modern stablelm spelling, with HF defaults
  const m = parseModelConfig({
    model_type: 'stablelm',
    vocab_size: 10,
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    use_qkv_bias: true,
  }).config as StableLmConfig;
  assert.equal(m.partial_rotary_factor, 0.25);
  assert.equal(m.layer_norm_eps, 1e-5);
  assert.equal(m.use_qkv_bias, true);
});

test('gpt2 defaults: n_inner 4*n_embd, tied, layer_norm_epsilon', { skip }, () => {
  const c = loadModelConfig(hf('gpt2')).config as Gpt2Config;
  assert.equal(c.n_inner, 3072); // n_inner null -> 4 * 768
  assert.equal(c.tie_word_embeddings, true);
  assert.equal(c.head_dim, 64);
  assert.equal(c.layer_norm_epsilon, 1e-5);
  assert.equal(c.activation_function, 'gelu_new');
  const t = loadModelConfig(sharedPath('fixtures', 'reference', 'gpt2-tiny')).config as Gpt2Config;
  assert.equal(t.n_inner, 256); // matches mlp.c_fc.weight [64, 256] in its model.safetensors
});

test('HF class defaults when keys are absent', () => {
  const base = { vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 };
  const l = parseModelConfig({ model_type: 'llama', ...base }).config as LlamaLikeConfig;
  assert.equal(l.num_key_value_heads, 2);
  assert.equal(l.head_dim, 4);
  assert.equal(l.tie_word_embeddings, false);
  assert.equal(l.rms_norm_eps, 1e-6);
  assert.equal(l.rope_theta, 10000);
  assert.equal(l.max_position_embeddings, 2048);
  const m = parseModelConfig({ model_type: 'mistral', ...base, num_attention_heads: 8, hidden_size: 16 })
    .config as LlamaLikeConfig;
  assert.equal(m.num_key_value_heads, 8);
  assert.equal(m.sliding_window, 4096);
  const mNull = parseModelConfig({ model_type: 'mistral', ...base, num_key_value_heads: 2, sliding_window: null })
    .config as LlamaLikeConfig;
  assert.equal(mNull.sliding_window, null);
  const q = parseModelConfig({ model_type: 'qwen2', ...base, tie_word_embeddings: undefined })
    .config as LlamaLikeConfig;
  assert.equal(q.tie_word_embeddings, false);
  const g = parseModelConfig({ model_type: 'gpt2', vocab_size: 10, n_embd: 8, n_layer: 1, n_head: 2 })
    .config as Gpt2Config;
  assert.equal(g.n_inner, 32);
  assert.equal(g.tie_word_embeddings, true);
  assert.equal(g.n_positions, 1024);
  // `type` is the older spelling of `rope_type`
  const lin = parseModelConfig({ model_type: 'llama', ...base, rope_scaling: { type: 'linear', factor: 2 } })
    .config as LlamaLikeConfig;
  assert.deepEqual(lin.rope_scaling, { rope_type: 'linear', factor: 2 });
});

test('bad configs are clear errors naming the key', () => {
  const base = {
    model_type: 'llama',
    vocab_size: 10,
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
  };
  assert.throws(
    () => parseModelConfig({ ...base, model_type: 'bert' }, 'x/config.json'),
    /x\/config\.json: model_type "bert" is not supported/,
  );
  assert.throws(() => parseModelConfig({ ...base, model_type: undefined }), /model_type undefined is not supported/);
  assert.throws(() => parseModelConfig({ ...base, hidden_size: undefined }), /"hidden_size" is required/);
  assert.throws(
    () => parseModelConfig({ ...base, hidden_size: '8' }),
    /"hidden_size" must be a positive integer, got "8"/,
  );
  assert.throws(
    () => parseModelConfig({ ...base, num_attention_heads: 3 }),
    /hidden_size 8 is not divisible by num_attention_heads 3/,
  );
  assert.throws(() => parseModelConfig({ ...base, num_key_value_heads: 3 }), /not a multiple of num_key_value_heads 3/);
  assert.throws(
    () => parseModelConfig({ ...base, rope_scaling: { rope_type: 'yarn', factor: 4 } }),
    /rope_scaling\.rope_type "yarn" is not supported \(supported: default, linear, llama3\)/,
  );
  assert.throws(
    () => parseModelConfig({ ...base, rope_scaling: { rope_type: 'dynamic', factor: 4 } }),
    /"dynamic" is not supported/,
  );
  assert.throws(
    () => parseModelConfig({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8 } }),
    /rope_scaling\.low_freq_factor must be a positive number/,
  );
  assert.throws(
    () => parseModelConfig({ ...base, tie_word_embeddings: 'yes' }),
    /"tie_word_embeddings" must be true or false/,
  );
  assert.throws(() => parseModelConfig([1]), /expected a JSON object/);
  assert.throws(() => loadModelConfig('/nonexistent'), /config\.json: not found/);
});

test('default rope inverse frequencies: 1 / theta^(2i/d)', () => {
  // d = 8, theta = 10000: exponents 0, 1/4, 2/4, 3/4 -> 1, 0.1, 0.01, 0.001
  assertClose(defaultInvFreq(8, 10000), [1, 0.1, 0.01, 0.001], { atol: 1e-15, label: 'inv_freq d=8' });
  assert.throws(() => defaultInvFreq(7, 10000), /positive even integer/);
});

test('llama3 inverse frequencies, all three bands, by hand', () => {
  // d = 8, theta = 10000 -> inv = [1, 0.1, 0.01, 0.001], wavelengths 2*pi/inv = [6.283, 62.83, 628.3, 6283].
  // old = 64, low_freq_factor 1 -> low_freq_wavelen 64; high_freq_factor 4 -> high_freq_wavelen 16; factor 8.
  //   i=0: 6.283 < 16 -> high frequency, unchanged: 1
  //   i=1: 16 <= 62.83 <= 64 -> medium: smooth = (64/62.83 - 1)/(4 - 1), value = (1 - smooth)*0.1/8 + smooth*0.1
  //   i=2, 3: wavelength > 64 -> divided by 8
  const smooth = (64 / ((2 * Math.PI) / 0.1) - 1) / 3;
  const expected = [1, ((1 - smooth) * 0.1) / 8 + smooth * 0.1, 0.01 / 8, 0.001 / 8];
  const got = llama3InvFreq(defaultInvFreq(8, 10000), {
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 64,
  });
  assertClose(got, expected, { atol: 1e-15, label: 'llama3 inv_freq (hand)' });
  assert.ok(smooth > 0 && smooth < 0.01, `smooth ${smooth}`); // 62.83 is just inside the band

  // the llama3-tiny-tied reference: head_dim 128/8 = 16, theta 500000, factor 8, lo 1, hi 4, old 16
  //   i=0: inv 1, wavelength 6.283 is in [16/4, 16/1] = [4, 16] -> medium, smooth = (16/6.283 - 1)/3
  //   i>=1: inv = 500000^(-2i/16) <= 0.194, wavelength >= 32.4 > 16 -> divided by 8
  const s0 = (16 / (2 * Math.PI) - 1) / 3;
  const exp2 = [(1 - s0) / 8 + s0, ...[1, 2, 3, 4, 5, 6, 7].map((i) => 500000 ** (-(2 * i) / 16) / 8)];
  const c = parseModelConfig({
    model_type: 'llama',
    vocab_size: 300,
    hidden_size: 128,
    intermediate_size: 256,
    num_hidden_layers: 2,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 16,
    },
  }).config as LlamaLikeConfig;
  assertClose(ropeInvFreq(c.head_dim, c.rope_theta, c.rope_scaling), exp2, {
    atol: 1e-15,
    label: 'llama3-tiny-tied inv_freq',
  });
  // linear scaling divides everything by the factor
  assertClose(ropeInvFreq(8, 10000, { rope_type: 'linear', factor: 2 }), [0.5, 0.05, 0.005, 0.0005], {
    atol: 1e-15,
    label: 'linear',
  });
});

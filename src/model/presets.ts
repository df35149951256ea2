// Named architecture shapes for `medlora init --like NAME`: the config.json of a real checkpoint family minus its
// vocabulary (which comes from the tokenizer). Sources: the config.json files under ../shared/fixtures/hf (copied from
// the Hugging Face Hub: HuggingFaceTB/SmolLM2-135M-Instruct, meta-llama/Llama-3.2-1B, Qwen/Qwen2.5-0.5B-Instruct,
// mistralai/Mistral-7B-v0.1, openai-community/gpt2) and ../shared/fixtures/reference/llama-tiny (medlora's test shape).

export interface ArchitecturePreset {
  /** what it is, for --help and errors */
  about: string;
  /** config.json without vocab_size / bos_token_id / eos_token_id (set from the tokenizer) */
  config: Record<string, unknown>;
}

export const ARCHITECTURES: Readonly<Record<string, ArchitecturePreset>> = {
  'llama-tiny': {
    about: 'Llama, 2 layers, hidden 64 (the shape of the reference fixture llama-tiny; seconds to train)',
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 176, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000.0, max_position_embeddings: 2048,
      tie_word_embeddings: false, hidden_act: 'silu' },
  },
  'smollm2-135m': {
    about: 'SmolLM2-135M (Llama, 30 layers, hidden 576, GQA 9/3, tied embeddings)',
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
      num_attention_heads: 9, num_key_value_heads: 3, rms_norm_eps: 1e-5, rope_theta: 100000, max_position_embeddings: 8192,
      tie_word_embeddings: true, hidden_act: 'silu', initializer_range: 0.041666666666666664, attention_bias: false, mlp_bias: false },
  },
  'llama-3.2-1b': {
    about: 'Llama-3.2-1B (16 layers, hidden 2048, GQA 32/8, llama3 rope scaling, tied embeddings)',
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
      num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 500000.0, max_position_embeddings: 131072,
      rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      tie_word_embeddings: true, hidden_act: 'silu', initializer_range: 0.02, attention_bias: false, mlp_bias: false },
  },
  'qwen2.5-0.5b': {
    about: 'Qwen2.5-0.5B (24 layers, hidden 896, GQA 14/2, q/k/v bias, tied embeddings)',
    config: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
      num_attention_heads: 14, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000.0, max_position_embeddings: 32768,
      tie_word_embeddings: true, hidden_act: 'silu', initializer_range: 0.02, use_sliding_window: false },
  },
  'mistral-7b': {
    about: 'Mistral-7B-v0.1 (32 layers, hidden 4096, GQA 32/8, sliding window 4096): 7B parameters, 28 GB in f32',
    config: { architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
      num_attention_heads: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 10000.0, max_position_embeddings: 32768,
      sliding_window: 4096, tie_word_embeddings: false, hidden_act: 'silu', initializer_range: 0.02 },
  },
  gpt2: {
    about: 'GPT-2 small (12 layers, hidden 768, Conv1D projections, learned positions)',
    config: { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024, n_ctx: 1024,
      n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, initializer_range: 0.02, scale_attn_weights: true,
      scale_attn_by_inverse_layer_idx: false, reorder_and_upcast_attn: false, tie_word_embeddings: true },
  },
};

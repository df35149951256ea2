// Qwen2ForCausalLM: the Llama architecture with a bias on q_proj / k_proj / v_proj (none on o_proj); the config
// parser derives qkv_bias = true for qwen2. With use_sliding_window (and some layer sliding, see io/config.ts
// qwen2SlidingWindow) medlora, which implements full attention only, refuses inputs longer than the window, as for
// Mistral: within the window sliding and full attention are identical.
import type { LlamaLikeConfig } from '../io/config.js';
import { LlamaForCausalLM } from './llama.js';

export class Qwen2ForCausalLM extends LlamaForCausalLM {
  constructor(c: LlamaLikeConfig) {
    if (!c.qkv_bias) throw new Error('qwen2: config must have qkv_bias (set by parseModelConfig)');
    super(c);
  }
  protected override slidingWindow(): number | null {
    return this.config.sliding_window;
  }
}

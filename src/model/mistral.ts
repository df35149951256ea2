// MistralForCausalLM: the Llama architecture (same keys and math) plus `sliding_window`. medlora implements full
// attention only, so an input longer than the window (where Mistral's attention would differ) is refused with an
// error instead of being computed differently; within the window the two are identical.
import type { LlamaLikeConfig } from '../io/config.js';
import { LlamaForCausalLM } from './llama.js';

export class MistralForCausalLM extends LlamaForCausalLM {
  constructor(c: LlamaLikeConfig) {
    super(c);
  }
  protected override slidingWindow(): number | null {
    return this.config.sliding_window;
  }
}

// model_type -> architecture. Each entry builds an empty model (declared parameter shapes, no weights) from a parsed
// config and says how checkpoint keys map onto it (HF base_model_prefix, keys HF itself ignores on load).
import type { ModelConfig } from '../io/config.js';
import { MedloraError } from '../util/errors.js';
import type { DecoderLM } from './decoder.js';
import { GPT2LMHeadModel } from './gpt2.js';
import { LlamaForCausalLM } from './llama.js';
import { MistralForCausalLM } from './mistral.js';
import { Qwen2ForCausalLM } from './qwen2.js';
import { StableLmForCausalLM } from './stablelm.js';

/** A model plus the loader's key rules. */
export interface LoadedModel extends DecoderLM {
  /** checkpoint keys to try for an expected key, in order */
  checkpointAliases(key: string): string[];
  /** keys present in some checkpoints that HF drops on load (non-persistent buffers, a tied lm_head) */
  ignoredCheckpointKey(key: string): boolean;
}

type Builder = (c: ModelConfig) => DecoderLM;

/** key rules per HF base_model_prefix, plus buffers HF ignores on load */
function withKeyRules(m: DecoderLM, prefix: string, ignored: RegExp[], tied: boolean): LoadedModel {
  const lm = m as LoadedModel;
  lm.checkpointAliases = (key) => (key.startsWith(`${prefix}.`) ? [key, key.slice(prefix.length + 1)] : [key]);
  lm.ignoredCheckpointKey = (key) => (tied && key === 'lm_head.weight') || ignored.some((r) => r.test(key));
  return lm;
}

// older Llama conversions saved the rotary inv_freq buffer (transformers _keys_to_ignore_on_load_unexpected)
const ROTARY_BUFFER = /(^|\.)rotary_emb\.inv_freq$/;

const BUILDERS: Record<string, { build: Builder; prefix: string; ignored: RegExp[] }> = {
  llama: { build: (c) => new LlamaForCausalLM(c as never), prefix: 'model', ignored: [ROTARY_BUFFER] },
  mistral: { build: (c) => new MistralForCausalLM(c as never), prefix: 'model', ignored: [ROTARY_BUFFER] },
  qwen2: { build: (c) => new Qwen2ForCausalLM(c as never), prefix: 'model', ignored: [ROTARY_BUFFER] },
  stablelm: { build: (c) => new StableLmForCausalLM(c as never), prefix: 'model', ignored: [ROTARY_BUFFER] },
  // original GPT-2 checkpoints carry the causal-mask buffers h.N.attn.bias / attn.masked_bias (HF ignores them)
  gpt2: {
    build: (c) => new GPT2LMHeadModel(c as never),
    prefix: 'transformer',
    ignored: [/(^|\.)attn\.(masked_)?bias$/],
  },
};

export function supportedArchitectures(): string[] {
  return Object.keys(BUILDERS).sort();
}

/** An empty model for a parsed config; an unknown model_type is a clear error. */
export function buildModel(config: ModelConfig): LoadedModel {
  const b = BUILDERS[config.model_type];
  if (!b)
    throw new MedloraError(
      `model_type ${JSON.stringify(config.model_type)} has no architecture in medlora (supported: ${supportedArchitectures().join(', ')})`,
    );
  return withKeyRules(b.build(config), b.prefix, b.ignored, config.tie_word_embeddings);
}

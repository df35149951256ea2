// LlamaForCausalLM (Llama-2, Llama-3/3.1/3.2 with llama3 rope scaling, tied embeddings, explicit head_dim, GQA), the
// shared body of Mistral and Qwen2 (q/k/v bias). Field names are HF's keys (transformers models/llama/modeling_llama.py).
import type { Tensor } from '../tensor/index.js';
import type { LlamaLikeConfig } from '../io/config.js';
import { ropeInvFreq } from '../io/rope.js';
import { ModuleList } from './module.js';
import { DecoderLM, type DecoderLayer, type ExtensibleAttention, type LayerContext } from './decoder.js';
import { activation, applyRotary, attend, Embedding, Linear, ParamModule, RMSNorm, Rotary } from './layers.js';

/** What the attention block needs from a config (StableLM reuses it with its own bias settings). */
export type AttentionShape = Pick<
  LlamaLikeConfig,
  'hidden_size' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim' | 'qkv_bias' | 'o_bias'
>;
/** What the gated MLP needs from a config. */
export type MlpShape = Pick<LlamaLikeConfig, 'hidden_size' | 'intermediate_size' | 'mlp_bias' | 'hidden_act'> & {
  model_type: string;
};

/** Self-attention with rotary q/k (all of head_dim, or the first cos.size(-1) features: partial rotary) and GQA. */
export class LlamaAttention extends ParamModule implements ExtensibleAttention {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  private readonly heads: number;
  private readonly kvHeads: number;
  readonly headDim: number;
  extraAttention: ExtensibleAttention['extraAttention'] = undefined;
  get numHeads(): number {
    return this.heads;
  }
  get numKvHeads(): number {
    return this.kvHeads;
  }

  constructor(c: AttentionShape) {
    super();
    this.heads = c.num_attention_heads;
    this.kvHeads = c.num_key_value_heads;
    this.headDim = c.head_dim;
    const d = c.hidden_size;
    this.q_proj = this.module('q_proj', new Linear(d, this.heads * this.headDim, c.qkv_bias));
    this.k_proj = this.module('k_proj', new Linear(d, this.kvHeads * this.headDim, c.qkv_bias));
    this.v_proj = this.module('v_proj', new Linear(d, this.kvHeads * this.headDim, c.qkv_bias));
    this.o_proj = this.module('o_proj', new Linear(this.heads * this.headDim, d, c.o_bias));
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    // x: [B, T, hidden]
    const [B, T] = x.shape as [number, number, number];
    const hd = this.headDim;
    let q = this.q_proj.forward(x).view([B, T, this.heads, hd]).transpose(1, 2); // q: [B, heads, T, hd]
    let k = this.k_proj.forward(x).view([B, T, this.kvHeads, hd]).transpose(1, 2); // k: [B, kv_heads, T, hd]
    let v = this.v_proj.forward(x).view([B, T, this.kvHeads, hd]).transpose(1, 2); // v: [B, kv_heads, T, hd]
    q = applyRotary(q, ctx.cos!, ctx.sin!);
    k = applyRotary(k, ctx.cos!, ctx.sin!);
    // with a cache, k and v grow to the L = past + T positions: [B, kv_heads, L, hd]
    if (ctx.cache) ({ k, v } = ctx.cache.update(ctx.layerIndex, k, v));
    let y = attend(q, k, v, ctx.mask); // y: [B, heads, T, hd] (kv heads repeated for GQA inside attend)
    if (this.extraAttention) y = y.add(this.extraAttention(q, ctx)); // e.g. Adapter-V2's gated prefix, same shape
    return this.o_proj.forward(y.transpose(1, 2).reshape([B, T, this.heads * hd])); // [B, T, hidden]
  }

  projectKeyValue(x: Tensor): { k: Tensor; v: Tensor } {
    const [B, L] = x.shape as [number, number, number];
    // k, v: [B, kv_heads, L, hd]
    return {
      k: this.k_proj.forward(x).view([B, L, this.kvHeads, this.headDim]).transpose(1, 2),
      v: this.v_proj.forward(x).view([B, L, this.kvHeads, this.headDim]).transpose(1, 2),
    };
  }
}

export class LlamaMLP extends ParamModule {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  private readonly act: (x: Tensor) => Tensor;
  constructor(c: MlpShape) {
    super();
    this.gate_proj = this.module('gate_proj', new Linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
    this.up_proj = this.module('up_proj', new Linear(c.hidden_size, c.intermediate_size, c.mlp_bias));
    this.down_proj = this.module('down_proj', new Linear(c.intermediate_size, c.hidden_size, c.mlp_bias));
    this.act = activation(c.hidden_act, `${c.model_type} config hidden_act`);
  }
  forward(x: Tensor): Tensor {
    // x: [B, T, hidden] -> gate, up: [B, T, intermediate] -> [B, T, hidden]
    return this.down_proj.forward(this.act(this.gate_proj.forward(x)).mul(this.up_proj.forward(x)));
  }
}

export class LlamaDecoderLayer extends ParamModule implements DecoderLayer {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(c: LlamaLikeConfig) {
    super();
    this.self_attn = this.module('self_attn', new LlamaAttention(c));
    this.mlp = this.module('mlp', new LlamaMLP(c));
    this.input_layernorm = this.module('input_layernorm', new RMSNorm(c.hidden_size, c.rms_norm_eps));
    this.post_attention_layernorm = this.module('post_attention_layernorm', new RMSNorm(c.hidden_size, c.rms_norm_eps));
  }
  forward(x: Tensor, ctx: LayerContext): Tensor {
    // pre-norm residual blocks; x, h: [B, T, hidden]
    const h = x.add(this.self_attn.forward(this.input_layernorm.forward(x), ctx));
    return h.add(this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

export class LlamaModel extends ParamModule {
  embed_tokens: Embedding;
  layers: ModuleList<LlamaDecoderLayer>;
  norm: RMSNorm;
  constructor(c: LlamaLikeConfig) {
    super();
    this.embed_tokens = this.module('embed_tokens', new Embedding(c.vocab_size, c.hidden_size));
    const layers: LlamaDecoderLayer[] = [];
    for (let i = 0; i < c.num_hidden_layers; i++) layers.push(new LlamaDecoderLayer(c));
    this.layers = this.module('layers', new ModuleList(layers));
    this.norm = this.module('norm', new RMSNorm(c.hidden_size, c.rms_norm_eps));
  }
}

export class LlamaForCausalLM extends DecoderLM {
  readonly config: LlamaLikeConfig & Record<string, unknown>;
  model: LlamaModel;
  lm_head: Linear;

  constructor(c: LlamaLikeConfig) {
    super();
    this.config = c as LlamaLikeConfig & Record<string, unknown>;
    this.model = this.module('model', new LlamaModel(c));
    this.lm_head = this.module('lm_head', new Linear(c.hidden_size, c.vocab_size, false));
    // HF: with tie_word_embeddings the head IS the embedding matrix (an lm_head.weight in the file is ignored)
    if (c.tie_word_embeddings) this.lm_head.tieTo(this.model.embed_tokens);
    this.rotary = new Rotary(ropeInvFreq(c.head_dim, c.rope_theta, c.rope_scaling), c.head_dim);
  }

  protected layerList(): DecoderLayer[] {
    return [...this.model.layers];
  }
  protected embed(inputIds: Tensor): Tensor {
    return this.model.embed_tokens.forward(inputIds);
  }
  protected head(x: Tensor): Tensor {
    return this.lm_head.forward(this.model.norm.forward(x));
  }
  protected maxPositions(): number | undefined {
    return this.config.max_position_embeddings;
  }
}

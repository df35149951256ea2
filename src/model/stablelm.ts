// StableLmForCausalLM (transformers models/stablelm/modeling_stablelm.py; also the older remote-code stablelm_epoch,
// same keys): LayerNorm with bias, partial rotary (the first head_dim * partial_rotary_factor features of each head),
// optional q/k/v bias, optional parallel residual. Attention and MLP are Llama's blocks.
import type { Tensor } from '../tensor/index.js';
import { rotaryDim, type StableLmConfig } from '../io/config.js';
import { ropeInvFreq } from '../io/rope.js';
import { MedloraError } from '../util/errors.js';
import { ModuleList } from './module.js';
import { DecoderLM, type DecoderLayer, type LayerContext } from './decoder.js';
import { Embedding, LayerNorm, Linear, ParamModule, Rotary } from './layers.js';
import { LlamaAttention, LlamaMLP } from './llama.js';

export class StableLmDecoderLayer extends ParamModule implements DecoderLayer {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: LayerNorm;
  post_attention_layernorm: LayerNorm | undefined;
  private readonly parallel: boolean;
  constructor(c: StableLmConfig) {
    super();
    this.parallel = c.use_parallel_residual;
    this.self_attn = this.module('self_attn', new LlamaAttention({ ...c, qkv_bias: c.use_qkv_bias, o_bias: false }));
    this.mlp = this.module('mlp', new LlamaMLP({ ...c, mlp_bias: false }));
    this.input_layernorm = this.module('input_layernorm', new LayerNorm(c.hidden_size, c.layer_norm_eps));
    // HF: no post_attention_layernorm with the parallel residual (attention and MLP both read input_layernorm's output)
    if (!this.parallel)
      this.post_attention_layernorm = this.module(
        'post_attention_layernorm',
        new LayerNorm(c.hidden_size, c.layer_norm_eps),
      );
  }
  forward(x: Tensor, ctx: LayerContext): Tensor {
    const h = this.input_layernorm.forward(x);
    const a = this.self_attn.forward(h, ctx);
    if (this.parallel) return x.add(a).add(this.mlp.forward(h));
    const r = x.add(a);
    return r.add(this.mlp.forward(this.post_attention_layernorm!.forward(r)));
  }
}

export class StableLmModel extends ParamModule {
  embed_tokens: Embedding;
  layers: ModuleList<StableLmDecoderLayer>;
  norm: LayerNorm;
  constructor(c: StableLmConfig) {
    super();
    this.embed_tokens = this.module('embed_tokens', new Embedding(c.vocab_size, c.hidden_size));
    const layers: StableLmDecoderLayer[] = [];
    for (let i = 0; i < c.num_hidden_layers; i++) layers.push(new StableLmDecoderLayer(c));
    this.layers = this.module('layers', new ModuleList(layers));
    this.norm = this.module('norm', new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }
}

export class StableLmForCausalLM extends DecoderLM {
  readonly config: StableLmConfig & Record<string, unknown>;
  model: StableLmModel;
  lm_head: Linear;
  constructor(c: StableLmConfig) {
    super();
    if (c.qk_layernorm)
      throw new MedloraError(
        'stablelm config: qk_layernorm=true (per-head q/k LayerNorms, StableLM-2 12B) is not supported',
      );
    this.config = c as StableLmConfig & Record<string, unknown>;
    this.model = this.module('model', new StableLmModel(c));
    this.lm_head = this.module('lm_head', new Linear(c.hidden_size, c.vocab_size, false));
    if (c.tie_word_embeddings) this.lm_head.tieTo(this.model.embed_tokens);
    const rd = rotaryDim(c);
    this.rotary = new Rotary(ropeInvFreq(rd, c.rope_theta, c.rope_scaling), rd);
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

// GPT2LMHeadModel: learned position embeddings, pre-LayerNorm blocks, Conv1D weights stored [in, out], gelu_new MLP,
// lm_head tied to wte. Keys as in transformers models/gpt2/modeling_gpt2.py ("transformer.h.0.attn.c_attn.weight").
import type { Tensor } from '../tensor/index.js';
import type { Gpt2Config } from '../io/config.js';
import { MedloraError } from '../util/errors.js';
import { ModuleList } from './module.js';
import { DecoderLM, type DecoderLayer, type ExtensibleAttention, type LayerContext } from './decoder.js';
import { activation, attend, Conv1D, Embedding, LayerNorm, Linear, ParamModule } from './layers.js';

export class GPT2Attention extends ParamModule implements ExtensibleAttention {
  c_attn: Conv1D;
  c_proj: Conv1D;
  extraAttention: ExtensibleAttention['extraAttention'] = undefined;
  get numHeads(): number {
    return this.c.n_head;
  }
  get numKvHeads(): number {
    return this.c.n_head;
  }
  get headDim(): number {
    return this.c.head_dim;
  }
  constructor(private readonly c: Gpt2Config) {
    super();
    this.c_attn = this.module('c_attn', new Conv1D(c.n_embd, 3 * c.n_embd));
    this.c_proj = this.module('c_proj', new Conv1D(c.n_embd, c.n_embd));
  }
  forward(x: Tensor, ctx: LayerContext): Tensor {
    // x: [B, T, d]; c_attn (Conv1D) -> [B, T, 3d], split into q, k, v: [B, T, d] each
    const [B, T, d] = x.shape as [number, number, number];
    const h = this.c.n_head,
      hd = this.c.head_dim;
    const [q0, k0, v0] = this.c_attn.forward(x).split(d, -1) as [Tensor, Tensor, Tensor];
    const q = q0.view([B, T, h, hd]).transpose(1, 2); // q, k, v: [B, heads, T, hd]
    let k = k0.view([B, T, h, hd]).transpose(1, 2);
    let v = v0.view([B, T, h, hd]).transpose(1, 2);
    if (ctx.cache) ({ k, v } = ctx.cache.update(ctx.layerIndex, k, v));
    // scale_attn_weights=false means no 1/sqrt(d) scaling
    let y = attend(q, k, v, ctx.mask, this.c.scale_attn_weights ? undefined : 1); // [B, heads, T, hd]
    if (this.extraAttention) y = y.add(this.extraAttention(q, ctx));
    return this.c_proj.forward(y.transpose(1, 2).reshape([B, T, d]));
  }

  projectKeyValue(x: Tensor): { k: Tensor; v: Tensor } {
    const [B, L, d] = x.shape as [number, number, number];
    const h = this.c.n_head,
      hd = this.c.head_dim;
    // the fused c_attn output splits into q, k, v; k, v: [B, heads, L, hd]
    const [, k0, v0] = this.c_attn.forward(x).split(d, -1) as [Tensor, Tensor, Tensor];
    return { k: k0.view([B, L, h, hd]).transpose(1, 2), v: v0.view([B, L, h, hd]).transpose(1, 2) };
  }
}

export class GPT2MLP extends ParamModule {
  c_fc: Conv1D;
  c_proj: Conv1D;
  private readonly act: (x: Tensor) => Tensor;
  constructor(c: Gpt2Config) {
    super();
    this.c_fc = this.module('c_fc', new Conv1D(c.n_embd, c.n_inner));
    this.c_proj = this.module('c_proj', new Conv1D(c.n_inner, c.n_embd));
    this.act = activation(c.activation_function, 'gpt2 config activation_function');
  }
  forward(x: Tensor): Tensor {
    // x: [B, T, d] -> c_fc: [B, T, n_inner] -> [B, T, d]
    return this.c_proj.forward(this.act(this.c_fc.forward(x)));
  }
}

export class GPT2Block extends ParamModule implements DecoderLayer {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;
  constructor(c: Gpt2Config) {
    super();
    this.ln_1 = this.module('ln_1', new LayerNorm(c.n_embd, c.layer_norm_epsilon));
    this.attn = this.module('attn', new GPT2Attention(c));
    this.ln_2 = this.module('ln_2', new LayerNorm(c.n_embd, c.layer_norm_epsilon));
    this.mlp = this.module('mlp', new GPT2MLP(c));
  }
  forward(x: Tensor, ctx: LayerContext): Tensor {
    const h = x.add(this.attn.forward(this.ln_1.forward(x), ctx));
    return h.add(this.mlp.forward(this.ln_2.forward(h)));
  }
}

export class GPT2Model extends ParamModule {
  wte: Embedding;
  wpe: Embedding;
  h: ModuleList<GPT2Block>;
  ln_f: LayerNorm;
  constructor(c: Gpt2Config) {
    super();
    this.wte = this.module('wte', new Embedding(c.vocab_size, c.n_embd));
    this.wpe = this.module('wpe', new Embedding(c.n_positions, c.n_embd));
    const blocks: GPT2Block[] = [];
    for (let i = 0; i < c.n_layer; i++) blocks.push(new GPT2Block(c));
    this.h = this.module('h', new ModuleList(blocks));
    this.ln_f = this.module('ln_f', new LayerNorm(c.n_embd, c.layer_norm_epsilon));
  }
}

export class GPT2LMHeadModel extends DecoderLM {
  readonly config: Gpt2Config & Record<string, unknown>;
  transformer: GPT2Model;
  lm_head: Linear;
  constructor(c: Gpt2Config) {
    super();
    if (c.scale_attn_by_inverse_layer_idx || c.reorder_and_upcast_attn) {
      throw new MedloraError(
        'gpt2 config: scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported',
      );
    }
    this.config = c as Gpt2Config & Record<string, unknown>;
    this.transformer = this.module('transformer', new GPT2Model(c));
    this.lm_head = this.module('lm_head', new Linear(c.n_embd, c.vocab_size, false));
    // GPT2LMHeadModel always ties lm_head to wte unless the config says otherwise
    if (c.tie_word_embeddings) this.lm_head.tieTo(this.transformer.wte);
  }
  protected layerList(): DecoderLayer[] {
    return [...this.transformer.h];
  }
  protected embed(inputIds: Tensor, positionIds: Tensor): Tensor {
    return this.transformer.wte.forward(inputIds).add(this.transformer.wpe.forward(positionIds));
  }
  protected head(x: Tensor): Tensor {
    return this.lm_head.forward(this.transformer.ln_f.forward(x));
  }
  protected maxPositions(): number | undefined {
    return this.config.n_positions;
  }
}

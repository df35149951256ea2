// LLaMA-Adapter V2 as litgpt defines it (litgpt/adapter_v2.py, litgpt/adapter.py), as wrappers: AdapterV2Linear around
// a linear layer (y = adapter_scale * (x W^T + b + adapter_bias)) and AdapterV2Attention around an attention module (a
// learned prefix attended by every query with its own softmax, gated per head, added before the output projection).
// Unlike litgpt, the prefix keys / values are never cached while gradients are on (litgpt issue #1287, PR #2327): they
// are recomputed on every forward with gradients, and cached only for one generation (one KV cache).
import { isGradEnabled, keep, noGrad, ones, randn, scope, zeros, type Tensor } from '../tensor/index.js';
import { Module, type LinearLike } from '../model/module.js';
import { attend } from '../model/layers.js';
import type { ExtensibleAttention, LayerContext } from '../model/decoder.js';
import { MedloraError } from '../util/errors.js';
import { moduleDevice, onDevice } from './lora.js';

/** adapter_bias [out] (init 0) and adapter_scale [out] (init 1) around a linear layer; both F32 leaves. */
export class AdapterV2Linear extends Module implements LinearLike {
  declare readonly base_layer: LinearLike;
  declare readonly adapter_bias: Tensor;
  declare readonly adapter_scale: Tensor;

  constructor(base: LinearLike) {
    super();
    if (base instanceof AdapterV2Linear)
      throw new MedloraError('AdapterV2Linear: the layer already has an Adapter-V2 bias / scale');
    this.module('base_layer', base);
    for (const [, t] of base.namedParameters()) if (t.requiresGrad) t.requiresGrad_(false);
    const device = moduleDevice(base);
    this.param('adapter_bias', zeros([base.outFeatures], { device }).requiresGrad_(true));
    this.param('adapter_scale', ones([base.outFeatures], { device }).requiresGrad_(true));
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }
  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }
  get fanInFanOut(): boolean {
    return this.base_layer.fanInFanOut;
  }

  /** Replace bias or scale (loading); shape [out]; stored as an F32 leaf on the base's device. */
  setVector(which: 'adapter_bias' | 'adapter_scale', t: Tensor, label: string): void {
    if (t.ndim !== 1 || t.shape[0] !== this.outFeatures)
      throw new MedloraError(
        `${label}: ${which} has shape [${t.shape.join(', ')}]; expected [${this.outFeatures}] (out_features)`,
      );
    this.setParam(
      which,
      noGrad(() =>
        t
          .detach()
          .to({ dtype: 'f32', device: moduleDevice(this.base_layer) })
          .clone(),
      ).requiresGrad_(true),
    );
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      // x: [B, T, in]; y: [B, T, out], includes the layer's own bias; adapter_bias, adapter_scale: [out]
      const y = this.base_layer.forward(x);
      // computed in F32 (the adapter's dtype) and cast back once: at init (bias 0, scale 1) exactly y
      const z = (y.dtype === 'f32' ? y : y.to('f32')).add(this.adapter_bias).mul(this.adapter_scale); // [B, T, out] f32
      return z.dtype === y.dtype ? z : z.to(y.dtype);
    });
  }
}

/** The prefix rows: a module holding `weight` [prompt_length, hidden] (litgpt's adapter_wte, an nn.Embedding). */
export class AdapterPrefix extends Module {
  declare readonly weight: Tensor;
  constructor(weight: Tensor) {
    super();
    this.param('weight', weight);
  }
}

/**
 * Wraps an attention module (one exposing the ExtensibleAttention hook). Its children are the inner module's
 * children (q_proj, k_proj, ... keep their HF paths) plus adapter_wte; gating_factor [heads] is its own parameter.
 */
export class AdapterV2Attention extends Module {
  declare readonly adapter_wte: AdapterPrefix;
  declare readonly gating_factor: Tensor;
  /** the prefix k / v of the generation (KV cache) they were computed for; never used while gradients are on */
  private cached: { cache: object; dtype: string; k: Tensor; v: Tensor } | undefined;

  constructor(
    readonly inner: Module & ExtensibleAttention,
    promptLength: number,
    hidden: number,
  ) {
    super();
    if (inner.extraAttention)
      throw new MedloraError('AdapterV2Attention: the attention module already has an extra-attention hook');
    for (const [n, c] of inner.namedChildren()) this.module(n, c);
    const device = moduleDevice(inner);
    // litgpt: adapter_wte = nn.Embedding(adapter_prompt_length, n_embd), i.e. N(0, 1); gating_factor zeros
    // drawn from the CPU generator and moved: a seed gives the same prefix on every device (as LoRA's init does)
    const wte = scope(() => onDevice(randn([promptLength, hidden]), device));
    this.module('adapter_wte', new AdapterPrefix(wte.requiresGrad_(true)));
    this.param('gating_factor', zeros([inner.numHeads], { device }).requiresGrad_(true));
    inner.extraAttention = (q, ctx) => this.prefixAttention(q, ctx);
  }

  get promptLength(): number {
    return this.adapter_wte.weight.shape[0]!;
  }

  /** Keep the inner module's fields in step when a child is replaced (e.g. unwrapping a linear layer on merge). */
  override setChild(name: string, m: Module): void {
    super.setChild(name, m);
    if (this.inner.child(name)) this.inner.setChild(name, m);
  }

  /** Remove the hook; returns the inner attention module (to put back in place of this wrapper). */
  unwrap(): Module {
    this.inner.extraAttention = undefined;
    this.dropCache();
    return this.inner;
  }

  private dropCache(): void {
    if (this.cached) {
      this.cached.k.dispose();
      this.cached.v.dispose();
      this.cached = undefined;
    }
  }

  /** The prefix through this layer's k / v projections (with their adapter bias / scale): [1, kv_heads, L_p, hd] each. */
  private prefixKeyValue(dtype: Tensor['dtype'], ctx: LayerContext): { k: Tensor; v: Tensor } {
    const gen = ctx.cache !== undefined && !isGradEnabled();
    if (gen && this.cached && this.cached.cache === ctx.cache && this.cached.dtype === dtype)
      return { k: this.cached.k, v: this.cached.v };
    // P: [1, L_p, hidden]; no norm, no rotary embedding
    const P = this.adapter_wte.weight.unsqueeze(0);
    const kv = this.inner.projectKeyValue(P.dtype === dtype ? P : P.to(dtype));
    if (gen) {
      this.dropCache();
      this.cached = { cache: ctx.cache!, dtype, k: keep(kv.k), v: keep(kv.v) };
    }
    return kv;
  }

  /** q: [B, heads, T, hd] -> gating_factor[h] * softmax(q K_p^T / sqrt(hd)) V_p: [B, heads, T, hd] in q's dtype. */
  private prefixAttention(q: Tensor, ctx: LayerContext): Tensor {
    const [B, , , hd] = q.shape as [number, number, number, number];
    const { k, v } = this.prefixKeyValue(q.dtype, ctx); // k, v: [1, kv_heads, L_p, hd]
    const L = k.shape[2]!;
    const kb = k.expand([B, this.inner.numKvHeads, L, hd]); // [B, kv_heads, L_p, hd], repeated for GQA in attend
    const vb = v.expand([B, this.inner.numKvHeads, L, hd]);
    const ay = attend(q, kb, vb, { kind: 'none' }, 1 / Math.sqrt(hd)); // [B, heads, T, hd], no mask
    const g = this.gating_factor.view([1, this.inner.numHeads, 1, 1]); // [1, heads, 1, 1]
    const out = ay.mul(g); // [B, heads, T, hd]
    return out.dtype === q.dtype ? out : out.to(q.dtype);
  }

  // x: [B, T, hidden] -> [B, T, hidden]: the inner attention, which calls prefixAttention through its hook
  forward(x: Tensor, ctx: LayerContext): Tensor {
    return (this.inner as unknown as { forward(x: Tensor, ctx: LayerContext): Tensor }).forward(x, ctx);
  }
}

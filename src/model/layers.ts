// Building blocks shared by every architecture: Linear / Conv1D / Embedding / RMSNorm / LayerNorm modules (fields
// named like HF keys), declared-shape parameters for checkpoint loading, rotary tables, and masked GQA attention.
import {
  arange,
  cat,
  embedding,
  empty,
  layerNorm,
  linear,
  rmsNorm,
  scaledDotProductAttention,
  tensor,
  keep,
  type DType,
  type Device,
  type Tensor,
} from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';
import { Module, type LinearLike } from './module.js';

// ---------------------------------------------------------------------------------------------------------------
// parameters with declared shapes

/** Expected [shape] of every declared parameter, per module (what the loader checks checkpoint tensors against). */
const declared = new WeakMap<Module, Map<string, number[]>>();

/**
 * A module whose parameters are declared with their HF shape and filled in later by the loader (or a test). Until
 * then each parameter is a 0-element placeholder, so building a 7B model allocates nothing.
 */
export class ParamModule extends Module {
  protected declareParam(name: string, shape: readonly number[]): Tensor {
    let m = declared.get(this);
    if (!m) declared.set(this, (m = new Map()));
    m.set(name, [...shape]);
    return this.param(name, keep(empty([0])));
  }

  /** The parameter names this module declared and their expected shapes. */
  declaredShapes(): ReadonlyMap<string, number[]> {
    return declared.get(this) ?? new Map();
  }

  /** Drop a declared parameter (a tied head: it is not in the checkpoint and not a separate parameter). */
  protected undeclare(name: string): void {
    declared.get(this)?.delete(name);
    this.removeParam(name);
  }
}

/** Every declared parameter of a tree: full key -> [module, local name, expected shape]. */
export function declaredParameters(root: Module): Map<string, { module: Module; name: string; shape: number[] }> {
  const out = new Map<string, { module: Module; name: string; shape: number[] }>();
  for (const [path, m] of root.namedModules()) {
    const d = declared.get(m);
    if (!d) continue;
    for (const [name, shape] of d) out.set(path ? `${path}.${name}` : name, { module: m, name, shape });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// modules

/** torch.nn.Linear: weight [out, in], optional bias [out]; y = x W^T + b. */
export class Linear extends ParamModule implements LinearLike {
  readonly fanInFanOut = false;
  weight!: Tensor;
  bias: Tensor | undefined;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias: boolean,
  ) {
    super();
    this.declareParam('weight', [outFeatures, inFeatures]);
    if (bias) this.declareParam('bias', [outFeatures]);
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
  /**
   * Tie this head to an embedding (tie_word_embeddings): the weight is not a parameter of its own (not in the
   * checkpoint, not listed by namedParameters) and always reads the embedding's current weight.
   */
  tieTo(source: Embedding): void {
    this.undeclare('weight');
    this.weight.dispose();
    Object.defineProperty(this, 'weight', {
      get: () => source.weight,
      set: () => {
        throw new MedloraError('lm_head.weight is tied to the input embedding; set the embedding weight instead');
      },
      configurable: true,
      enumerable: true,
    });
  }
}

/** GPT-2's Conv1D: weight stored [in, out] (PEFT fan_in_fan_out), bias [out]; y = x W + b. */
export class Conv1D extends ParamModule implements LinearLike {
  readonly fanInFanOut = true;
  weight!: Tensor;
  bias!: Tensor;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super();
    this.declareParam('weight', [inFeatures, outFeatures]);
    this.declareParam('bias', [outFeatures]);
  }
  forward(x: Tensor): Tensor {
    // linear() with the transposed view: one addmm, no copy of the weight
    return linear(x, this.weight.transpose(0, 1), this.bias);
  }
}

/** torch.nn.Embedding: weight [num, dim]; rows picked by ids. */
export class Embedding extends ParamModule {
  weight!: Tensor;
  constructor(
    readonly num: number,
    readonly dim: number,
  ) {
    super();
    this.declareParam('weight', [num, dim]);
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** LlamaRMSNorm: w * (x.float() * rsqrt(mean(x.float()^2) + eps)).to(x.dtype) (the engine's fused op). */
export class RMSNorm extends ParamModule {
  weight!: Tensor;
  constructor(
    readonly dim: number,
    readonly eps: number,
  ) {
    super();
    this.declareParam('weight', [dim]);
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** torch.nn.LayerNorm over the last dimension, with weight and bias. */
export class LayerNorm extends ParamModule {
  weight!: Tensor;
  bias!: Tensor;
  constructor(
    readonly dim: number,
    readonly eps: number,
  ) {
    super();
    this.declareParam('weight', [dim]);
    this.declareParam('bias', [dim]);
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}

/** The MLP activations medlora implements (HF ACT2FN names). */
export function activation(name: string, where: string): (x: Tensor) => Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return (x) => x.silu();
    case 'gelu':
      return (x) => x.gelu('none');
    // gelu_new / gelu_pytorch_tanh: the tanh approximation 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return (x) => x.gelu('tanh');
    case 'relu':
      return (x) => x.relu();
    default:
      throw new MedloraError(
        `${where}: activation ${JSON.stringify(name)} is not supported (silu, gelu, gelu_new, gelu_pytorch_tanh, relu)`,
      );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// rotary position embeddings

/**
 * cos/sin tables for rotary embeddings. As in HF, angles are pos * inv_freq in float32 and cos/sin are taken in
 * float32 and cast to the activation dtype; the tables are built once for a length (grown by doubling) and rows are
 * picked by position id, which gives the same values as computing them per call.
 */
export class Rotary {
  private readonly invFreq: Float32Array;
  private len = 0;
  private tables = new Map<DType, { cos: Tensor; sin: Tensor }>();
  private device: Device = 'cpu';

  /** invFreq: src/io/rope.ts output (rotary dim / 2 values) */
  constructor(
    invFreq: Float64Array,
    readonly dim: number,
  ) {
    this.invFreq = Float32Array.from(invFreq);
    if (this.invFreq.length * 2 !== dim) throw new Error(`rotary: ${this.invFreq.length} frequencies for dim ${dim}`);
  }

  private build(len: number, device: Device): void {
    this.dispose();
    const half = this.invFreq.length;
    const ang = new Float32Array(len * this.dim);
    for (let p = 0; p < len; p++) {
      for (let i = 0; i < half; i++) {
        // Math.fround: the product rounded to f32 exactly as torch's f32 outer product rounds it
        const a = Math.fround(p * this.invFreq[i]!);
        ang[p * this.dim + i] = a;
        ang[p * this.dim + half + i] = a;
      }
    }
    const t = tensor(ang, { shape: [len, this.dim], device });
    this.tables.set('f32', keep({ cos: t.cos(), sin: t.sin() }));
    t.dispose();
    this.len = len;
    this.device = device;
  }

  /** cos, sin as [B or 1, 1, T, dim] for positionIds [B or 1, T] (i64), in `dtype`. */
  get(positionIds: Tensor, maxPos: number, dtype: DType, device: Device): { cos: Tensor; sin: Tensor } {
    if (maxPos >= this.len || device !== this.device)
      this.build(Math.max(64, 2 ** Math.ceil(Math.log2(maxPos + 1))), device);
    let tab = this.tables.get(dtype);
    if (!tab) {
      const f = this.tables.get('f32')!;
      tab = keep({ cos: f.cos.to(dtype), sin: f.sin.to(dtype) });
      this.tables.set(dtype, tab);
    }
    return { cos: embedding(tab.cos, positionIds).unsqueeze(1), sin: embedding(tab.sin, positionIds).unsqueeze(1) };
  }

  dispose(): void {
    for (const { cos, sin } of this.tables.values()) {
      cos.dispose();
      sin.dispose();
    }
    this.tables.clear();
    this.len = 0;
  }
}

/** [x1, x2] -> [-x2, x1] over the last dimension (HF rotate_half). */
export function rotateHalf(x: Tensor): Tensor {
  const [a, b] = x.chunk(2, -1) as [Tensor, Tensor];
  return cat([b.neg(), a], -1);
}

/** x * cos + rotate_half(x) * sin on the first cos.size(-1) features of each head (all of them unless partial). */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const rd = cos.size(-1);
  const hd = x.size(-1);
  if (rd === hd) return x.mul(cos).add(rotateHalf(x).mul(sin));
  // StableLM partial rotary: rotate the first rd features, pass the rest through
  const rot = x.narrow(-1, 0, rd);
  const pass = x.narrow(-1, rd, hd - rd);
  return cat([rot.mul(cos).add(rotateHalf(rot).mul(sin)), pass], -1);
}

// ---------------------------------------------------------------------------------------------------------------
// attention

/**
 * How a forward call attends: fused causal (no padding, no cache prefix), nothing (one new token), a mask, or causal
 * within each of the consecutive segments of one packed row (variable-length attention: `lengths` sum to T).
 */
export type AttnMask =
  | { kind: 'causal' }
  | { kind: 'none' }
  | { kind: 'mask'; mask: Tensor }
  | { kind: 'segments'; lengths: readonly number[] };

/**
 * The attention mask for T new queries over past + T keys. attentionMask: [B, past + T] 1/0 or undefined. Padding
 * keys are hidden; a padding query would then see no key at all (NaN rows), so every query may always see itself,
 * which changes nothing for real tokens (their own key is visible anyway). Right padding alone (training batches)
 * needs no mask: under causal attention no real token sees the padding after it, so the fused causal path is kept.
 */
export function buildAttnMask(attentionMask: Tensor | undefined, past: number, T: number, device: Device): AttnMask {
  const S = past + T;
  let needMask = false;
  if (attentionMask) {
    if (attentionMask.ndim !== 2 || attentionMask.size(1) !== S) {
      throw new MedloraError(
        `attention mask has shape [${attentionMask.shape.join(', ')}], expected [batch, ${S}] (cached ${past} + new ${T})`,
      );
    }
    needMask = !onlyRightPadding(attentionMask.toNumbers(), S);
  }
  if (!needMask) {
    if (past === 0) return { kind: 'causal' };
    if (T === 1) return { kind: 'none' };
  }
  const q = arange(past, S, 1, { device }).view([T, 1]);
  const k = arange(0, S, 1, { device }).view([1, S]);
  let allowed = k.le(q).view([1, 1, T, S]);
  if (needMask) {
    const keyOk = attentionMask!.ne(0).view([attentionMask!.size(0), 1, 1, S]);
    allowed = allowed.logicalAnd(keyOk).logicalOr(k.eq(q).view([1, 1, T, S]));
  }
  return { kind: 'mask', mask: allowed };
}

/** true when every row is 1...1 0...0 (no padding, or padding only at the end) */
function onlyRightPadding(m: number[], S: number): boolean {
  for (let r = 0; r < m.length; r += S) {
    let seenPad = false;
    for (let j = 0; j < S; j++) {
      if (m[r + j] === 0) seenPad = true;
      else if (seenPad) return false;
    }
  }
  return true;
}

/** [B, kv, S, d] -> [B, kv * nRep, S, d], each kv head repeated nRep times in place (HF repeat_kv). */
export function repeatKv(x: Tensor, nRep: number): Tensor {
  if (nRep === 1) return x;
  const [B, kv, S, d] = x.shape as [number, number, number, number];
  return x
    .unsqueeze(2)
    .expand([B, kv, nRep, S, d])
    .reshape([B, kv * nRep, S, d]);
}

/**
 * Padding-free packing: segmentIds [B, T] -> a block-diagonal causal mask [B, 1, T, T] (query i sees key j iff j <= i
 * and both belong to the same segment), so packed examples never see each other.
 */
export function packedAttnMask(segmentIds: Tensor, device: Device): AttnMask {
  if (segmentIds.ndim !== 2)
    throw new MedloraError(`segment ids must be [batch, seq], got [${segmentIds.shape.join(', ')}]`);
  const [B, T] = segmentIds.shape as [number, number];
  const q = arange(0, T, 1, { device }).view([T, 1]);
  const k = arange(0, T, 1, { device }).view([1, T]);
  // same: [B, 1, T, T]
  const same = segmentIds.view([B, 1, T, 1]).eq(segmentIds.view([B, 1, 1, T]));
  return { kind: 'mask', mask: k.le(q).view([1, 1, T, T]).logicalAnd(same) };
}

/**
 * Padding-free packing with the segment lengths known on the host (one packed row): attention runs as the fused
 * causal kernel on each segment, the CPU counterpart of flash-attention's varlen path. A [T, T] block-diagonal mask
 * (packedAttnMask) computes and masks every cross-segment score: with 8 rows of ~117 tokens packed into one row of
 * ~940 that is 8x the attention work of the rows alone; here it is exactly the rows' own work.
 */
export function segmentsAttnMask(lengths: readonly number[], T: number): AttnMask {
  if (!lengths.length || lengths.some((l) => !Number.isInteger(l) || l < 1) || lengths.reduce((a, b) => a + b, 0) !== T)
    throw new MedloraError(
      `segment lengths must be positive integers summing to the row's ${T} tokens, got [${lengths.join(', ')}]`,
    );
  return lengths.length === 1 ? { kind: 'causal' } : { kind: 'segments', lengths };
}

/** softmax(q k^T / sqrt(d) + mask) v with q [B, h, T, d] and k, v [B, kv, S, d] (GQA). */
export function attend(q: Tensor, k: Tensor, v: Tensor, mask: AttnMask, scale?: number): Tensor {
  if (mask.kind === 'segments') {
    // q: [1, h, T, d] packed; each segment [1, h, L, d] attends causally to its own keys; out: [1, h, T, d]
    const outs: Tensor[] = [];
    let off = 0;
    for (const L of mask.lengths) {
      const part = (t: Tensor): Tensor => t.narrow(2, off, L);
      outs.push(attend(part(q), part(k), part(v), { kind: 'causal' }, scale));
      off += L;
    }
    return cat(outs, 2);
  }
  const nRep = q.size(1) / k.size(1);
  const kk = repeatKv(k, nRep);
  const vv = repeatKv(v, nRep);
  const o: { mask?: Tensor; isCausal?: boolean; scale?: number } = {};
  if (scale !== undefined) o.scale = scale;
  if (mask.kind === 'causal') o.isCausal = true;
  else if (mask.kind === 'mask') o.mask = mask.mask;
  return scaledDotProductAttention(q, kk, vv, o);
}

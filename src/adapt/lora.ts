// LoRA (Hu et al. 2021) as a wrapper around any LinearLike layer, laid out like PEFT's lora.Linear so that module
// paths give PEFT's key names directly: <path>.base_layer (frozen), <path>.lora_A.weight [r, in], <path>.lora_B.weight
// [out, r]. forward(x) = base(x) + (B (A dropout(x))) * scaling, the LoRA branch computed in F32 (PEFT keeps adapter
// weights in F32 over a BF16 base); as in PEFT's lora.Linear.forward the sum is formed in the promoted dtype (F32)
// and cast back to the base output's dtype once.
import { linear, noGrad, rand, randn, scope, zeros, type Device, type Tensor } from '../tensor/index.js';
import { Module, type LinearLike } from '../model/module.js';
import { MedloraError } from '../util/errors.js';

/** One LoRA factor: a module holding only `weight`, like PEFT's nn.Linear(bias=False) lora_A / lora_B. */
export class LoraFactor extends Module {
  declare readonly weight: Tensor;
  constructor(weight: Tensor) {
    super();
    this.param('weight', weight);
  }
}

/**
 * How A and B start (PEFT's `init_lora_weights`):
 * - true (default): A ~ kaiming_uniform_(a=sqrt(5)), B = 0, so a fresh adapter is an exact no-op;
 * - 'gaussian': A ~ N(0, 1/r^2) (std 1/r), B = 0;
 * - false: both factors get nn.Linear's default init (kaiming_uniform_(a=sqrt(5)) each), so the adapter is NOT a no-op
 *   (for tests and experiments).
 */
export type LoraInit = boolean | 'gaussian';

export interface LoraLinearOptions {
  r: number;
  loraAlpha: number;
  loraDropout?: number;
  /** scale alpha / sqrt(r) (rsLoRA, Kalajdzievski 2023) instead of alpha / r */
  useRslora?: boolean;
  init?: LoraInit;
}

/**
 * kaiming_uniform_(w, a=sqrt(5)) for a [rows, fanIn] weight: torch.nn.init documents bound = sqrt(6 / ((1 + a^2) fan_in));
 * with a^2 = 5 that is sqrt(6 / (6 fan_in)) = 1 / sqrt(fan_in). Drawn from the engine RNG (seed with manualSeed).
 */
export function kaimingUniformA5(rows: number, fanIn: number, device: Device = 'cpu'): Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  // drawn from the CPU generator and then moved: a seed gives the same adapter on every device
  return scope(() =>
    onDevice(
      rand([rows, fanIn])
        .mul(2 * bound)
        .sub(bound),
      device,
    ),
  );
}

/** `t` on `device` (the same tensor when it is there already). */
export function onDevice(t: Tensor, device: Device): Tensor {
  return t.device === device ? t : t.to(device);
}

/** The device of a module's first parameter (where its LoRA factors must live). */
export function moduleDevice(m: Module): Device {
  for (const [, t] of m.namedParameters()) return t.device;
  return 'cpu';
}

export class LoraLinear extends Module implements LinearLike {
  declare readonly base_layer: LinearLike;
  declare readonly lora_A: LoraFactor;
  declare readonly lora_B: LoraFactor;
  readonly r: number;
  readonly loraAlpha: number;
  readonly scaling: number;
  readonly dropoutP: number;
  readonly useRslora: boolean;

  constructor(base: LinearLike, o: LoraLinearOptions) {
    super();
    if (base instanceof LoraLinear)
      throw new MedloraError('LoraLinear: the layer already has a LoRA adapter (wrapping twice is not supported)');
    if (!Number.isInteger(o.r) || o.r <= 0) throw new MedloraError(`LoRA: r must be a positive integer, got ${o.r}`);
    if (!(o.loraAlpha > 0)) throw new MedloraError(`LoRA: lora_alpha must be positive, got ${o.loraAlpha}`);
    const p = o.loraDropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new MedloraError(`LoRA: lora_dropout must be in [0, 1), got ${p}`);
    this.r = o.r;
    this.loraAlpha = o.loraAlpha;
    this.scaling = o.useRslora ? o.loraAlpha / Math.sqrt(o.r) : o.loraAlpha / o.r;
    this.dropoutP = p;
    this.useRslora = o.useRslora ?? false;
    this.module('base_layer', base);
    for (const [, t] of base.namedParameters()) if (t.requiresGrad) t.requiresGrad_(false);
    const dev = moduleDevice(base);
    const init = o.init ?? true;
    const [A, B] = noGrad(() => {
      const a =
        init === 'gaussian'
          ? scope(() => onDevice(randn([o.r, base.inFeatures]).mul(1 / o.r), dev))
          : kaimingUniformA5(o.r, base.inFeatures, dev);
      const b =
        init === false ? kaimingUniformA5(base.outFeatures, o.r, dev) : zeros([base.outFeatures, o.r], { device: dev });
      return [a, b];
    });
    this.module('lora_A', new LoraFactor(A!.requiresGrad_(true)));
    this.module('lora_B', new LoraFactor(B!.requiresGrad_(true)));
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }
  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }
  /** A / B shapes do not depend on it; only merging transposes the delta for [in, out] (Conv1D) weights */
  get fanInFanOut(): boolean {
    return this.base_layer.fanInFanOut;
  }

  /** Replace A and B (e.g. loaded from an adapter file); shapes must be [r, in] and [out, r]; stored as F32 leaves. */
  setFactors(A: Tensor, B: Tensor, label = 'LoRA'): void {
    const wantA = [this.r, this.inFeatures],
      wantB = [this.outFeatures, this.r];
    if (A.shape.length !== 2 || A.shape[0] !== wantA[0] || A.shape[1] !== wantA[1]) {
      throw new MedloraError(
        `${label}: lora_A has shape [${A.shape.join(', ')}]; expected [${wantA.join(', ')}] (r, in_features)`,
      );
    }
    if (B.shape.length !== 2 || B.shape[0] !== wantB[0] || B.shape[1] !== wantB[1]) {
      throw new MedloraError(
        `${label}: lora_B has shape [${B.shape.join(', ')}]; expected [${wantB.join(', ')}] (out_features, r)`,
      );
    }
    const dev = moduleDevice(this.base_layer);
    const prep = (t: Tensor): Tensor =>
      noGrad(() => t.detach().to({ dtype: 'f32', device: dev }).clone()).requiresGrad_(true);
    this.lora_A.setParam('weight', prep(A));
    this.lora_B.setParam('weight', prep(B));
  }

  /** B @ A * scaling as an F32 [out, in] tensor (the weight update this adapter represents). */
  deltaWeight(): Tensor {
    return scope(() => this.lora_B.weight.matmul(this.lora_A.weight).mul(this.scaling));
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      // x: [B, T, in] (or [N, in]); y: [B, T, out] in the base's dtype (bias included)
      const y = this.base_layer.forward(x);
      let h = x.dtype === 'f32' ? x : x.to('f32'); // h: [B, T, in] f32
      if (this.training && this.dropoutP > 0) h = h.dropout(this.dropoutP, true);
      // scaling is applied to the rank-r activations [.., r] rather than to the [.., out] delta (PEFT scales the delta):
      // the same product up to f32 rounding (exact when scaling is a power of two, e.g. alpha 16 / r 8), and it saves a
      // full pass over the output in forward and in backward, which for lm_head is [tokens, vocab] in f32
      // (docs/PERFORMANCE.md).
      // A: [r, in], B: [out, r]; h A^T: [B, T, r]; d: [B, T, out] f32
      const d = linear(linear(h, this.lora_A.weight).mul(this.scaling), this.lora_B.weight);
      // PEFT adds in the promoted dtype (a bf16 result + an f32 delta is f32) and casts the sum back once; the engine's
      // add promotes by itself, so no f32 copy of the base output is made first
      return y.dtype === d.dtype ? y.add(d) : y.add(d).to(y.dtype);
    });
  }
}

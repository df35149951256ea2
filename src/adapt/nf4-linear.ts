// QLoRA's frozen base layer: a linear layer whose weight is stored as NF4 (see nf4.ts) and dequantized on the fly to
// the compute dtype in forward -- and again in backward (the base matmul runs inside an engine checkpoint, so the
// dequantized weight is never kept alive between forward and backward). Gradients flow to the input (and from there
// to LoRA factors), never to the frozen 4-bit weight. quantizeModel swaps a model's Linear / Conv1D children for these.
import { checkpoint, isGradEnabled, linear, scope, type DType, type Tensor } from '../tensor/index.js';
import { isLinearLike, Module, type LinearLike } from '../model/module.js';
import { MedloraError } from '../util/errors.js';
import { linearModulePaths, loraModules, resolve } from './apply.js';
import { dequantizeNf4, nf4Bytes, quantizeNf4, type Nf4Tensor } from './nf4.js';

export interface Nf4LinearOptions {
  doubleQuant?: boolean;
  blockSize?: number;
  /** dtype the weight is dequantized to and the matmul runs in (bnb_4bit_compute_dtype); default: the weight's dtype */
  computeDType?: DType;
}

export class Nf4Linear extends Module implements LinearLike {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** always false: the codes are stored for a [out, in] weight, whatever the original layout was */
  readonly fanInFanOut = false;
  readonly computeDType: DType;
  readonly q: Nf4Tensor;
  declare readonly bias: Tensor | undefined;

  /** weightOutIn: the floating-point weight as [out, in]; it is not kept (the caller disposes it). */
  constructor(weightOutIn: Tensor, bias: Tensor | undefined, o: Nf4LinearOptions = {}) {
    super();
    if (weightOutIn.ndim !== 2)
      throw new MedloraError(`Nf4Linear: expected a 2-D [out, in] weight, got ${weightOutIn}`);
    this.outFeatures = weightOutIn.shape[0]!;
    this.inFeatures = weightOutIn.shape[1]!;
    this.computeDType = o.computeDType ?? weightOutIn.dtype;
    this.q = quantizeNf4(weightOutIn, { doubleQuant: o.doubleQuant ?? false, blockSize: o.blockSize });
    // registered so that devices, memory and parameter listings see them (u8 / i8 codes cannot require grad)
    this.param('weight', this.q.codes);
    if (this.q.absmax) this.param('weight_absmax', this.q.absmax);
    if (this.q.dq) {
      this.param('weight_qabsmax', this.q.dq.qabsmax);
      this.param('weight_scale2', this.q.dq.scale2);
    }
    if (bias) this.param('bias', bias);
  }

  /** The weight as [out, in] in the compute dtype (or `dtype`). */
  dequantize(dtype: DType = this.computeDType): Tensor {
    return dequantizeNf4(this.q, dtype);
  }

  /** The stored tensors of the 4-bit weight and the element count of the weight they stand for (parameter counts). */
  quantizedWeight(): { tensors: Tensor[]; logicalNumel: number } {
    const tensors = [this.q.codes, this.q.absmax, this.q.dq?.qabsmax, this.q.dq?.scale2].filter(
      (t): t is Tensor => t !== undefined,
    );
    return { tensors, logicalNumel: this.inFeatures * this.outFeatures };
  }

  /** Bytes of the stored weight (codes + scales; the bias is not counted). */
  get weightBytes(): number {
    return nf4Bytes(this.q);
  }

  private base(x: Tensor): Tensor {
    return scope(() => {
      // x: [B, T, in] -> xc in the compute dtype; weight dequantized to [out, in]; y: [B, T, out] back in x's dtype
      const xc = x.dtype === this.computeDType ? x : x.to(this.computeDType);
      const b = this.bias
        ? this.bias.dtype === this.computeDType
          ? this.bias
          : this.bias.to(this.computeDType)
        : null;
      const y = linear(xc, this.dequantize(), b);
      return y.dtype === x.dtype ? y : y.to(x.dtype);
    });
  }

  forward(x: Tensor): Tensor {
    // x: [B, T, in] -> [B, T, out]; only when a gradient must flow back through this layer is recomputation worth it
    if (isGradEnabled() && x.requiresGrad) return checkpoint((xi) => this.base(xi), [x])[0]!;
    return this.base(x);
  }
}

export interface QuantizeOptions extends Nf4LinearOptions {
  /** module names (last path component) or full paths left unquantized; default ['lm_head'] as in QLoRA practice */
  skip?: string[];
}

export interface QuantizeReport {
  /** quantized module paths */
  layers: string[];
  /** bytes of those layers' weights before (original dtype) and after (codes + scales) */
  bytesBefore: number;
  bytesAfter: number;
  /** linear layers left as they were, with why */
  skipped: Array<{ path: string; reason: string }>;
}

/** Weight of a linear-like module as [out, in] (Conv1D's [in, out] transposed), or why it cannot be quantized. */
function weightOf(m: LinearLike): Tensor | string {
  const w = m.ownParameters().find(([n]) => n === 'weight')?.[1];
  if (!w) return 'no registered weight';
  if (!['f32', 'bf16', 'f16'].includes(w.dtype)) return `weight dtype ${w.dtype}`;
  if (w.ndim !== 2) return `weight is ${w.ndim}-D`;
  return w;
}

/**
 * Replace every linear layer (except `skip`) by an Nf4Linear holding its weight in 4 bits. Must run before LoRA is
 * applied (LoRA then wraps the Nf4Linear layers). A weight shared with another parameter (tied) is left alone.
 */
export function quantizeModel(model: Module, o: QuantizeOptions = {}): QuantizeReport {
  if (loraModules(model).length)
    throw new MedloraError('quantize: apply 4-bit quantization before adding LoRA adapters');
  const skip = o.skip ?? ['lm_head'];
  const report: QuantizeReport = { layers: [], bytesBefore: 0, bytesAfter: 0, skipped: [] };
  const counts = new Map<Tensor, number>();
  for (const [, t] of model.namedParameters()) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const path of linearModulePaths(model)) {
    const dot = path.lastIndexOf('.');
    const parent = resolve(model, dot < 0 ? '' : path.slice(0, dot))!;
    const name = path.slice(dot + 1);
    const m = parent.child(name)!;
    if (!isLinearLike(m) || m instanceof Nf4Linear) continue;
    if (skip.some((s) => s === name || s === path)) {
      report.skipped.push({ path, reason: 'skipped by option' });
      continue;
    }
    const w = weightOf(m);
    if (typeof w === 'string') {
      report.skipped.push({ path, reason: w });
      continue;
    }
    if ((counts.get(w) ?? 0) > 1) {
      report.skipped.push({ path, reason: 'weight is tied to another parameter' });
      continue;
    }
    const bias = m.ownParameters().find(([n]) => n === 'bias')?.[1];
    const wOutIn = m.fanInFanOut ? scope(() => w.transpose(0, 1).contiguous()) : w;
    const q = new Nf4Linear(wOutIn, bias, o);
    report.bytesBefore += w.numel * (w.dtype === 'f32' ? 4 : 2);
    report.bytesAfter += q.weightBytes;
    if (wOutIn !== w) wOutIn.dispose();
    w.dispose();
    parent.setChild(name, q);
    report.layers.push(path);
  }
  return report;
}

/** "12.3 MiB" style size for reports. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

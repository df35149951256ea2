// QLoRA's frozen base layer: a linear layer whose weight is stored as NF4 (see nf4.ts) and dequantized on the fly to
// the compute dtype in forward -- and again in backward (the base matmul runs inside an engine checkpoint, so the
// dequantized weight is never kept alive between forward and backward). Gradients flow to the input (and from there
// to LoRA factors), never to the frozen 4-bit weight. quantizeModel swaps a model's Linear / Conv1D children for these;
// loadModelNf4 quantizes each of those weights while the checkpoint is read (QLoRA's load_in_4bit).
import { checkpoint, isGradEnabled, keep, linear, scope, type DType, type Tensor } from '../tensor/index.js';
import { isLinearLike, Module, type LinearLike } from '../model/module.js';
import { loadModel, type LoadOptions } from '../model/load.js';
import type { LoadedModel } from '../model/registry.js';
import { MedloraError } from '../util/errors.js';
import { linearModulePaths, loraModules, resolve } from './apply.js';
import { dequantizeNf4, disposeNf4, nf4Bytes, quantizeNf4, type Nf4Tensor } from './nf4.js';

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

  /**
   * weightOutIn: the floating-point weight as [out, in] (it is not kept: the caller disposes it), or that weight
   * already quantized (quantizeNf4 of it; the layer then owns those tensors).
   */
  constructor(weightOutIn: Tensor | Nf4Tensor, bias: Tensor | undefined, o: Nf4LinearOptions = {}) {
    super();
    const given = 'codes' in weightOutIn;
    const shape = weightOutIn.shape;
    if (shape.length !== 2)
      throw new MedloraError(`Nf4Linear: expected a 2-D [out, in] weight, got shape [${shape.join(', ')}]`);
    this.outFeatures = shape[0]!;
    this.inFeatures = shape[1]!;
    this.computeDType = o.computeDType ?? weightOutIn.dtype;
    this.q = given ? weightOutIn : quantizeNf4(weightOutIn, nf4Options(o));
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

const FLOATING: readonly DType[] = ['f32', 'bf16', 'f16'];
const nf4Options = (o: Nf4LinearOptions): { doubleQuant: boolean; blockSize?: number } => ({
  doubleQuant: o.doubleQuant ?? false,
  blockSize: o.blockSize,
});

/** Weight of a linear-like module as [out, in] (Conv1D's [in, out] transposed), or why it cannot be quantized. */
function weightOf(m: LinearLike): Tensor | string {
  const w = m.ownParameters().find(([n]) => n === 'weight')?.[1];
  if (!w) return 'no registered weight';
  if (!FLOATING.includes(w.dtype)) return `weight dtype ${w.dtype}`;
  if (w.ndim !== 2) return `weight is ${w.ndim}-D`;
  return w;
}

/**
 * Replace every linear layer (except `skip`) by an Nf4Linear holding its weight in 4 bits. Must run before LoRA is
 * applied (LoRA then wraps the Nf4Linear layers). A weight shared with another parameter (tied) is left alone.
 */
export function quantizeModel(model: Module, o: QuantizeOptions = {}): QuantizeReport {
  return quantizeLinears(model, o, new Map());
}

/** quantizeModel, where the weights of the paths in `pre` were already quantized (by loadModelNf4) and consumed. */
function quantizeLinears(model: Module, o: QuantizeOptions, pre: Map<string, Nf4Tensor>): QuantizeReport {
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
    const given = pre.get(path);
    if (given) {
      pre.delete(path);
      const q = new Nf4Linear(given, m.ownParameters().find(([n]) => n === 'bias')?.[1], o);
      report.bytesBefore += given.shape[0]! * given.shape[1]! * (given.dtype === 'f32' ? 4 : 2);
      report.bytesAfter += q.weightBytes;
      m.ownParameters()
        .find(([n]) => n === 'weight')?.[1]
        .dispose(); // the loader's 0-element placeholder
      parent.setChild(name, q);
      report.layers.push(path);
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

/**
 * loadModel + quantizeModel with the same numerics (the same quantizeNf4 of the same loaded tensor, so the same codes
 * and scales), but each weight that quantizeModel would quantize is quantized as soon as the loader has read it (in
 * the compute dtype `load.dtype`) and its full-precision tensor is disposed at once: the whole full-precision base is
 * never resident, only one such tensor (plus the quantizer's F32 temporaries of it) at a time. Embeddings, norms and
 * skipped layers (lm_head by default) are loaded as loadModel does. QLoRA's load_in_4bit (src/train/setup.ts).
 */
export function loadModelNf4(
  dir: string,
  load: Omit<LoadOptions, 'onWeight'> = {},
  o: QuantizeOptions = {},
): { model: LoadedModel; report: QuantizeReport } {
  const skip = o.skip ?? ['lm_head'];
  const pre = new Map<string, Nf4Tensor>();
  const onWeight = (key: string, module: Module, name: string, t: Tensor): boolean => {
    if (name !== 'weight' || !isLinearLike(module) || module instanceof Nf4Linear) return false;
    const path = key.slice(0, key.length - '.weight'.length);
    if (skip.some((s) => s === path.slice(path.lastIndexOf('.') + 1) || s === path)) return false;
    if (!FLOATING.includes(t.dtype) || t.ndim !== 2) return false; // quantizeModel skips these too, with the reason
    try {
      // Conv1D stores [in, out]: quantized as [out, in], as quantizeModel does
      const wOutIn = module.fanInFanOut ? scope(() => t.transpose(0, 1).contiguous()) : t;
      try {
        pre.set(path, keep(quantizeNf4(wOutIn, nf4Options(o))));
      } finally {
        if (wOutIn !== t) wOutIn.dispose();
      }
    } finally {
      t.dispose();
    }
    return true;
  };
  let model: LoadedModel;
  try {
    model = loadModel(dir, { ...load, onWeight });
  } catch (e) {
    for (const q of pre.values()) disposeNf4(q);
    throw e;
  }
  let report: QuantizeReport;
  try {
    report = quantizeLinears(model, o, pre);
    if (pre.size)
      throw new MedloraError(
        `${dir}: quantized while loading but not swapped in: ${[...pre.keys()].join(', ')} (a weight shared by two layers?)`,
      );
  } catch (e) {
    for (const q of pre.values()) disposeNf4(q);
    model.dispose();
    throw e;
  }
  return { model, report };
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

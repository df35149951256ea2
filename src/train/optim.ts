// Optimizers for the trainer: torch AdamW (the engine's native one) and an 8-bit AdamW whose two moment tensors are
// stored block-wise quantized (blocks of 256, as bitsandbytes' blockwise 8-bit optimizers), with parameter groups
// (no weight decay on biases and norm weights, as HF Trainer's get_decay_parameter_names) and a state that can be
// saved to / loaded from named tensors exactly (for resume).
import { AdamW, fromBytes, noGrad, scope, tensor, zeros, type Tensor } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';
import type { OptimName } from './config.js';

export interface OptimizerOptions {
  name: OptimName;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/** Named state tensors plus JSON-able scalars: what a checkpoint stores. */
export interface OptimizerState {
  tensors: Record<string, Tensor>;
  meta: Record<string, unknown>;
}

export interface TrainOptimizer {
  readonly name: OptimName;
  step(lr: number): void;
  zeroGrad(): void;
  /** copies of the state (the caller disposes the tensors) */
  saveState(): OptimizerState;
  loadState(s: OptimizerState): void;
  /** bytes the moment state takes now, and what two f32 moments would take */
  stateBytes(): { actual: number; fp32: number };
  dispose(): void;
}

/**
 * HF Trainer leaves biases and LayerNorm/RMSNorm weights out of weight decay (trainer.py get_decay_parameter_names:
 * any name containing "bias" -- so also Adapter-V2's adapter_bias --, "norm" names, and nn.LayerNorm modules, which in
 * GPT-2 are ln_1 / ln_2 / ln_f).
 */
export function decays(name: string): boolean {
  return !(/bias/i.test(name) || /norm/i.test(name) || /(^|\.)ln_[^.]+\.(weight|bias)$/.test(name));
}

// ---------------------------------------------------------------------------------------------------------------
// torch AdamW (native)

class TorchAdamW implements TrainOptimizer {
  readonly name: OptimName = 'adamw_torch';
  private readonly groups: Array<{ names: string[]; opt: AdamW }> = [];

  constructor(params: ReadonlyArray<readonly [string, Tensor]>, o: OptimizerOptions) {
    const dec = params.filter(([n]) => decays(n)),
      no = params.filter(([n]) => !decays(n));
    for (const [g, wd] of [
      [dec, o.weightDecay],
      [no, 0],
    ] as const) {
      if (g.length)
        this.groups.push({
          names: g.map(([n]) => n),
          opt: new AdamW(
            g.map(([, t]) => t),
            { betas: o.betas, eps: o.eps, weightDecay: wd },
          ),
        });
    }
  }
  step(lr: number): void {
    for (const g of this.groups) g.opt.step(lr);
  }
  zeroGrad(): void {
    for (const g of this.groups) g.opt.zeroGrad();
  }
  saveState(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    const meta: Record<string, unknown> = {};
    this.groups.forEach((g, gi) => {
      const s = g.opt.state();
      meta[`group${gi}`] = { step: s.step, paramSteps: s.paramSteps, names: g.names };
      g.names.forEach((n, i) => {
        tensors[`${n}.exp_avg`] = s.expAvg[i]!.clone();
        tensors[`${n}.exp_avg_sq`] = s.expAvgSq[i]!.clone();
      });
      for (const t of [...s.expAvg, ...s.expAvgSq]) t.dispose();
    });
    return { tensors, meta };
  }
  loadState(s: OptimizerState): void {
    this.groups.forEach((g, gi) => {
      const m = s.meta[`group${gi}`] as { step: number; paramSteps: number[]; names: string[] } | undefined;
      if (!m || JSON.stringify(m.names) !== JSON.stringify(g.names)) {
        throw new MedloraError(
          `optimizer state: parameter group ${gi} does not match this model's trainable parameters`,
        );
      }
      const get = (k: string): Tensor => {
        const t = s.tensors[k];
        if (!t) throw new MedloraError(`optimizer state: missing tensor ${k}`);
        return t;
      };
      g.opt.loadState({
        step: m.step,
        paramSteps: m.paramSteps,
        expAvg: g.names.map((n) => get(`${n}.exp_avg`)),
        expAvgSq: g.names.map((n) => get(`${n}.exp_avg_sq`)),
      });
    });
  }
  stateBytes(): { actual: number; fp32: number } {
    const n = this.groups.reduce((a, g) => a + g.opt.params.reduce((b, p) => b + p.numel, 0), 0);
    return { actual: 8 * n, fp32: 8 * n };
  }
  dispose(): void {
    /* native state is freed with the handles */
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 8-bit AdamW

/** Elements per quantization block (bitsandbytes' blockwise optimizers use 256 for 8-bit state). */
export const BLOCK = 256;

/**
 * A dynamic (floating-point-like) 8-bit code book in [-1, 1] (signed) or [0, 1] (unsigned), after the idea of
 * Dettmers et al., "8-bit Optimizers via Block-wise Quantization" (2022, dynamic tree quantization): codes spread over
 * 7 decades (1e-6 .. 1), each decade split linearly, with more codes for the larger decades (where most of a block's
 * values and all of the update's weight are). Our own layout, not bitsandbytes' exact table: decade k (value range
 * 10^-k * (0.1, 1]) gets N_k levels 10^-k * (0.1 + 0.9 * (j + 1) / N_k), j = 0..N_k-1, with N_k = 64, 32, ..., 1
 * (signed, mirrored, plus 0: 255 codes) or 128, 64, ..., 2 (unsigned, plus 0: 255 codes). 1.0 is a code, so each
 * block's absmax is stored exactly. Returned sorted ascending.
 */
export function dynamicCodebook(signed: boolean): Float32Array {
  const top = signed ? 64 : 128;
  const pos: number[] = [];
  for (let k = 0; k < 7; k++) {
    const nk = top >> k;
    for (let j = 0; j < nk; j++) pos.push(10 ** -k * (0.1 + (0.9 * (j + 1)) / nk));
  }
  const all = signed ? [...pos.map((x) => -x), 0, ...pos] : [0, ...pos];
  return Float32Array.from(all.sort((a, b) => a - b));
}

export interface Quantized {
  /** u8 codes, [numBlocks * BLOCK] */
  codes: Tensor;
  /** f32 per-block absmax, [numBlocks] */
  absmax: Tensor;
}

/**
 * Block-wise quantization of an f32 tensor against a sorted code book: the nearest code of x / absmax(block). Done in
 * JS with a binary search over the code midpoints (a broadcast compare against all 255 midpoints in the engine was
 * ~50x slower on CPU); the result is deterministic.
 */
export function quantizeBlockwise(x: Tensor, book: Tensor, mids: Tensor): Quantized {
  void book;
  const xs = x.toFloat32Array();
  const m = mids.toFloat32Array();
  const n = xs.length;
  const blocks = Math.ceil(n / BLOCK);
  const codes = new Uint8Array(blocks * BLOCK);
  const absmax = new Float32Array(blocks);
  // padding decodes through the code nearest 0
  let zeroCode = 0;
  while (zeroCode < m.length && m[zeroCode]! < 0) zeroCode++;
  codes.fill(zeroCode, n);
  for (let b = 0; b < blocks; b++) {
    const lo = b * BLOCK,
      hi = Math.min(n, lo + BLOCK);
    let am = 0;
    for (let i = lo; i < hi; i++) {
      const a = Math.abs(xs[i]!);
      if (a > am) am = a;
    }
    absmax[b] = am;
    const inv = am > 0 ? 1 / am : 0;
    for (let i = lo; i < hi; i++) {
      const v = xs[i]! * inv;
      // number of midpoints strictly below v = index of the nearest code
      let l = 0,
        h = m.length;
      while (l < h) {
        const mid = (l + h) >> 1;
        if (m[mid]! < v) l = mid + 1;
        else h = mid;
      }
      codes[i] = l;
    }
  }
  return { codes: tensor(codes, { dtype: 'u8' }), absmax: tensor(absmax) };
}

/** Back to f32 with the original numel / shape. */
export function dequantizeBlockwise(q: Quantized, book: Tensor, shape: readonly number[]): Tensor {
  return scope(() => {
    const n = shape.reduce((a, b) => a * b, 1);
    const vals = book.indexSelect(0, q.codes.to('i64')).reshape([-1, BLOCK]).mul(q.absmax.unsqueeze(1));
    return vals.reshape([-1]).narrow(0, 0, n).reshape(shape);
  });
}

function midpoints(book: Float32Array): Tensor {
  const m = new Float32Array(book.length - 1);
  for (let i = 0; i < m.length; i++) m[i] = (book[i]! + book[i + 1]!) / 2;
  return tensor(m);
}

interface Param8 {
  name: string;
  p: Tensor;
  wd: number;
  steps: number;
  m: Quantized;
  v: Quantized;
}

/**
 * AdamW with the same update as torch (decoupled decay, bias correction), computed in f32 from the dequantized
 * moments, after which the new moments are quantized again for storage (as bitsandbytes' 8-bit Adam does).
 */
class AdamW8bit implements TrainOptimizer {
  private readonly params: Param8[];
  private readonly bookS = tensor(dynamicCodebook(true));
  private readonly bookU = tensor(dynamicCodebook(false));
  private readonly midS = midpoints(dynamicCodebook(true));
  private readonly midU = midpoints(dynamicCodebook(false));
  private stepCount = 0;

  constructor(
    readonly name: OptimName,
    params: ReadonlyArray<readonly [string, Tensor]>,
    private readonly o: OptimizerOptions,
  ) {
    this.params = params.map(([name, p]) => {
      const blocks = Math.ceil(p.numel / BLOCK);
      const q = (): Quantized => ({ codes: this.zeroCodes(blocks), absmax: zeros([blocks]) });
      return { name, p, wd: decays(name) ? o.weightDecay : 0, steps: 0, m: q(), v: q() };
    });
  }

  /** initial codes: with absmax 0 every code decodes to 0 */
  private zeroCodes(blocks: number): Tensor {
    return zeros([blocks * BLOCK], { dtype: 'u8' });
  }

  step(lr: number): void {
    this.stepCount++;
    const [b1, b2] = this.o.betas;
    noGrad(() => {
      for (const s of this.params) {
        const g0 = s.p.grad;
        if (g0 === null) continue;
        s.steps++;
        const t = s.steps;
        const [m, v] = scope(() => {
          // the 8-bit moments live on the host (the quantizer runs there); a CUDA gradient comes down, the update goes up
          const g = g0.to({ dtype: 'f32', device: 'cpu' });
          // zero state decodes through absmax 0, whatever the code
          const mOld = dequantizeBlockwise(s.m, this.bookS, s.p.shape);
          const vOld = dequantizeBlockwise(s.v, this.bookU, s.p.shape);
          const mNew = mOld.mul(b1).add(g, 1 - b1);
          const vNew = vOld.mul(b2).add(g.mul(g), 1 - b2);
          const bc1 = 1 - b1 ** t,
            bc2 = 1 - b2 ** t;
          const denom = vNew.sqrt().div(Math.sqrt(bc2)).add(this.o.eps);
          if (s.wd !== 0) s.p.mul_(1 - lr * s.wd);
          s.p.add_(mNew.div(denom).to({ dtype: s.p.dtype, device: s.p.device }), -lr / bc1);
          return [
            quantizeBlockwise(mNew, this.bookS, this.midS),
            quantizeBlockwise(vNew, this.bookU, this.midU),
          ] as const;
        });
        g0.dispose();
        for (const q of [s.m, s.v]) {
          q.codes.dispose();
          q.absmax.dispose();
        }
        s.m = m;
        s.v = v;
      }
    });
  }

  zeroGrad(): void {
    for (const s of this.params) s.p.zeroGrad();
  }

  saveState(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    for (const s of this.params) {
      tensors[`${s.name}.exp_avg.codes`] = s.m.codes.clone();
      tensors[`${s.name}.exp_avg.absmax`] = s.m.absmax.clone();
      tensors[`${s.name}.exp_avg_sq.codes`] = s.v.codes.clone();
      tensors[`${s.name}.exp_avg_sq.absmax`] = s.v.absmax.clone();
    }
    return {
      tensors,
      meta: {
        step: this.stepCount,
        paramSteps: this.params.map((s) => s.steps),
        names: this.params.map((s) => s.name),
        block: BLOCK,
      },
    };
  }

  loadState(st: OptimizerState): void {
    const names = st.meta.names as string[] | undefined;
    if (!names || JSON.stringify(names) !== JSON.stringify(this.params.map((s) => s.name))) {
      throw new MedloraError("optimizer state: its parameters do not match this model's trainable parameters");
    }
    if (st.meta.block !== BLOCK)
      throw new MedloraError(`optimizer state: block size ${String(st.meta.block)} != ${BLOCK}`);
    const get = (k: string): Tensor => {
      const t = st.tensors[k];
      if (!t) throw new MedloraError(`optimizer state: missing tensor ${k}`);
      return t.clone();
    };
    this.stepCount = st.meta.step as number;
    this.params.forEach((s, i) => {
      for (const q of [s.m, s.v]) {
        q.codes.dispose();
        q.absmax.dispose();
      }
      s.steps = (st.meta.paramSteps as number[])[i]!;
      s.m = { codes: get(`${s.name}.exp_avg.codes`), absmax: get(`${s.name}.exp_avg.absmax`) };
      s.v = { codes: get(`${s.name}.exp_avg_sq.codes`), absmax: get(`${s.name}.exp_avg_sq.absmax`) };
    });
  }

  stateBytes(): { actual: number; fp32: number } {
    let actual = 0,
      fp32 = 0;
    for (const s of this.params) {
      fp32 += 8 * s.p.numel;
      actual += 2 * (s.m.codes.numel + 4 * s.m.absmax.numel);
    }
    return { actual, fp32 };
  }

  dispose(): void {
    for (const s of this.params)
      for (const q of [s.m, s.v]) {
        q.codes.dispose();
        q.absmax.dispose();
      }
    for (const t of [this.bookS, this.bookU, this.midS, this.midU]) t.dispose();
  }
}

/** Build the optimizer the config names ("paged" only means CUDA unified-memory paging; on CPU it is plain 8-bit). */
export function createOptimizer(params: ReadonlyArray<readonly [string, Tensor]>, o: OptimizerOptions): TrainOptimizer {
  if (params.length === 0) throw new MedloraError('no trainable parameters (LoRA not applied, or everything frozen)');
  if (o.name === 'adamw_torch') return new TorchAdamW(params, o);
  return new AdamW8bit(o.name, params, o);
}

/** Re-create state tensors from raw bytes (checkpoint loading). */
export function stateTensorFromBytes(bytes: Uint8Array, dtype: 'f32' | 'u8', shape: number[]): Tensor {
  return fromBytes(bytes, dtype, shape);
}

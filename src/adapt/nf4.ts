// 4-bit NormalFloat (NF4) blockwise quantization from QLoRA (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of
// Quantized LLMs", section 3 and Appendix E), laid out like bitsandbytes: blocks of 64 consecutive weights (row-major)
// share one absmax scale; each weight stores the index of the nearest of 16 NF4 levels to w / absmax, two 4-bit codes
// per byte (first element in the high nibble, as bitsandbytes packs them). Double quantization (QLoRA section 3)
// quantizes the F32 block scales again to 8 bits in blocks of 256 after subtracting their mean.
import {
  cat,
  hasNativeNf4,
  nf4Dequantize,
  noGrad,
  scope,
  tensor,
  zeros,
  type DType,
  type Tensor,
} from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';

/**
 * The 16 NF4 levels, ascending: bitsandbytes' NF4 code table (functional.py create_normal_map / the kernel's
 * dDequantizeNF4), i.e. the QLoRA paper's Appendix E values: quantiles of N(0, 1) normalised to [-1, 1], with an
 * exact 0 (7 negative levels, 8 positive).
 */
export const NF4_LEVELS: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

/** Decision boundaries between neighbouring levels (a value above midpoint i gets code i + 1 or higher). */
export const NF4_MIDPOINTS: readonly number[] = NF4_LEVELS.slice(1).map((v, i) => (v + NF4_LEVELS[i]!) / 2);

/** bitsandbytes' default 4-bit block size and the QLoRA paper's block size for the second-level scales. */
export const NF4_BLOCK = 64;
export const DOUBLE_QUANT_BLOCK = 256;

export interface Nf4Tensor {
  /** packed codes, two per byte (high nibble first), ceil(numel / 64) * 32 bytes */
  codes: Tensor;
  /** F32 absmax per block, or undefined with double quantization */
  absmax?: Tensor;
  /** double quantization: i8 codes of (absmax - offset) / scale2 * 127, per 256-block scales, and the mean offset */
  dq?: { qabsmax: Tensor; scale2: Tensor; offset: number };
  shape: number[];
  /** the dtype the weight had (and dequantizes to by default) */
  dtype: DType;
  blockSize: number;
}

export interface Nf4Options {
  blockSize?: number;
  doubleQuant?: boolean;
}

/**
 * Blocks processed per chunk while quantizing: every temporary (the F32 copy of the chunk, its [chunk, 15] comparison
 * with the midpoints) is per chunk, so quantizing a weight needs ~36 bytes per element of one chunk (~38 MB) on top of
 * the weight and its codes, whatever the weight's size.
 */
const CHUNK_BLOCKS = 1 << 14;

/** Quantize a floating-point tensor to NF4 (codes of nearest levels, per-block absmax). */
export function quantizeNf4(w: Tensor, o: Nf4Options = {}): Nf4Tensor {
  const bs = o.blockSize ?? NF4_BLOCK;
  if (!Number.isInteger(bs) || bs <= 0 || bs % 2 !== 0)
    throw new MedloraError(`NF4: block size must be a positive even integer, got ${bs}`);
  if (!['f32', 'bf16', 'f16', 'f64'].includes(w.dtype))
    throw new MedloraError(`NF4: can only quantize floating-point weights, got ${w}`);
  const n = w.numel;
  if (n === 0) throw new MedloraError(`NF4: cannot quantize an empty tensor ${w}`);
  const nb = Math.ceil(n / bs);
  return noGrad(() =>
    scope(() => {
      const src = w.detach().reshape([-1]); // a view when w is contiguous
      const mids = tensor(Float32Array.from(NF4_MIDPOINTS), { device: w.device });
      const codeParts: Tensor[] = [],
        scaleParts: Tensor[] = [];
      for (let s = 0; s < nb; s += CHUNK_BLOCKS) {
        const len = Math.min(CHUNK_BLOCKS, nb - s);
        const [c, a] = scope(() => {
          // this chunk's weights in F32 (exact from bf16 / f16), zero-padded to whole blocks at the end
          const start = s * bs,
            count = Math.min(len * bs, n - start);
          let flat = src.narrow(0, start, count).to('f32');
          if (count < len * bs) flat = cat([flat, zeros([len * bs - count], { device: w.device })]);
          const blocks = flat.view([len, bs]);
          const absmax = blocks.abs().max(1, true); // [len, 1]
          const safe = absmax.maskedFill(absmax.eq(0), 1); // an all-zero block: every w / 1 = 0 -> the exact 0 level
          const x = blocks.div(safe);
          // code = number of midpoints strictly below x = index of the nearest level (ties go to the lower level);
          // counted in u8 (at most 15), which also keeps the reduction's temporary at one byte per comparison
          const code = x.unsqueeze(-1).gt(mids).sum(-1, false, 'u8').reshape([-1, 2]);
          return [code.select(1, 0).bitwiseLeftShift(4).bitwiseOr(code.select(1, 1)).to('u8'), absmax];
        });
        codeParts.push(c!);
        scaleParts.push(a!);
      }
      const codes = codeParts.length === 1 ? codeParts[0]!.contiguous() : cat(codeParts);
      const absmax = scaleParts.length === 1 ? scaleParts[0]! : cat(scaleParts);
      const scales = absmax.reshape([-1]);
      const out: Nf4Tensor = { codes, shape: [...w.shape], dtype: w.dtype, blockSize: bs };
      if (o.doubleQuant) out.dq = quantizeScales(scales);
      else out.absmax = scales.contiguous();
      return out;
    }),
  );
}

/**
 * Double quantization of the block scales: subtract their mean (they are all positive), then symmetric 8-bit absmax
 * quantization in blocks of 256. (bitsandbytes stores the 8-bit codes through its dynamic 8-bit map; here they are
 * linear int8 steps of scale2 / 127 -- the same 8 bits + one F32 per 256 blocks, a simpler code book.)
 */
function quantizeScales(absmax: Tensor): { qabsmax: Tensor; scale2: Tensor; offset: number } {
  return scope(() => {
    const n = absmax.numel;
    const offset = absmax.mean().item();
    const nb2 = Math.ceil(n / DOUBLE_QUANT_BLOCK);
    let c = absmax.sub(offset);
    if (nb2 * DOUBLE_QUANT_BLOCK !== n) c = cat([c, zeros([nb2 * DOUBLE_QUANT_BLOCK - n], { device: absmax.device })]);
    const blocks = c.view([nb2, DOUBLE_QUANT_BLOCK]);
    const scale2 = blocks.abs().max(1, true);
    const safe = scale2.maskedFill(scale2.eq(0), 1);
    const q = blocks.div(safe).mul(127).round().clamp(-127, 127).to('i8').reshape([-1]).narrow(0, 0, n).contiguous();
    return { qabsmax: q, scale2: scale2.reshape([-1]).contiguous(), offset };
  });
}

/** The F32 block scales of a quantized tensor (undoing double quantization if used). */
export function nf4Scales(q: Nf4Tensor): Tensor {
  if (q.absmax) return q.absmax;
  const dq = q.dq!;
  return noGrad(() =>
    scope(() => {
      const n = dq.qabsmax.numel;
      const per = dq.scale2.repeatInterleave(DOUBLE_QUANT_BLOCK).narrow(0, 0, n);
      return dq.qabsmax.to('f32').mul(per).div(127).add(dq.offset);
    }),
  );
}

/**
 * Dequantize: level[code] * absmax of its block, reshaped to the original shape, in `dtype` (default: original).
 * CPU weights go through the engine's one-pass kernel (native/src/nf4.cc: no index or F32 temporaries, bit-equal to
 * dequantizeNf4Reference, test/adapt/nf4-native.test.ts); other devices through the ATen chain.
 */
export function dequantizeNf4(q: Nf4Tensor, dtype: DType = q.dtype): Tensor {
  if (q.codes.device !== 'cpu' || !hasNativeNf4()) return dequantizeNf4Reference(q, dtype);
  return noGrad(() =>
    scope(() => {
      const n = q.shape.reduce((a, b) => a * b, 1);
      return nf4Dequantize(q.codes, nf4Scales(q), q.blockSize, n, dtype).reshape(q.shape);
    }),
  );
}

/**
 * The same dequantization as a chain of ATen ops (any device): shift/mask the codes into an i64 index, indexSelect
 * into the F32 levels, multiply by the F32 block scales, round once with .to(dtype). The reference of the native kernel.
 */
export function dequantizeNf4Reference(q: Nf4Tensor, dtype: DType = q.dtype): Tensor {
  return noGrad(() =>
    scope(() => {
      const levels = tensor(Float32Array.from(NF4_LEVELS), { device: q.codes.device });
      const hi = q.codes.bitwiseRightShift(4);
      const lo = q.codes.bitwiseAnd(15);
      const idx = cat([hi.unsqueeze(1), lo.unsqueeze(1)], 1)
        .reshape([-1])
        .to('i64');
      const vals = levels.indexSelect(0, idx).view([-1, q.blockSize]).mul(nf4Scales(q).unsqueeze(1));
      const n = q.shape.reduce((a, b) => a * b, 1);
      return vals.reshape([-1]).narrow(0, 0, n).reshape(q.shape).to(dtype).contiguous();
    }),
  );
}

/** Bytes the quantized form occupies (codes + scales). */
export function nf4Bytes(q: Nf4Tensor): number {
  if (q.absmax) return q.codes.numel + 4 * q.absmax.numel;
  return q.codes.numel + q.dq!.qabsmax.numel + 4 * q.dq!.scale2.numel + 4;
}

export function disposeNf4(q: Nf4Tensor): void {
  q.codes.dispose();
  q.absmax?.dispose();
  q.dq?.qabsmax.dispose();
  q.dq?.scale2.dispose();
}

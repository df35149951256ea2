// Float32 values -> the bytes of a GGUF tensor of type F32, F16, BF16 or Q8_0, and back (for checks).
// Q8_0 follows ggml-quants.c quantize_row_q8_0_ref: blocks of 32 values, d = max|x| / 127 stored as f16, q = roundf(x / d)
// as int8 (round half away from zero), computed in float32 like the C code; f16/bf16 round to nearest even.
import { f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../io/dtype.js';
import { MedloraError, fieldError } from '../util/errors.js';
import type { GgmlType } from './gguf-writer.js';

export const Q8_0_BLOCK = 32;

/** Encode `x` (row-major, rows of `rowLength` values) as `type`. `what` names the tensor in errors. */
export function encodeTensor(x: Float32Array, type: GgmlType, rowLength: number, what: string): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
    case 'F16': {
      const out = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) {
        const h = f32ToF16Bits(x[i]!);
        if ((h & 0x7c00) === 0x7c00 && Number.isFinite(x[i]!)) {
          throw fieldError(
            'type',
            `${what}: value ${x[i]} at index ${i} overflows float16 (max 65504); export with type bf16 or f32`,
          );
        }
        out[i] = h;
      }
      return new Uint8Array(out.buffer);
    }
    case 'BF16': {
      const out = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) out[i] = f32ToBf16Bits(x[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'Q8_0':
      return quantizeQ8_0(x, rowLength, what);
  }
}

/** ggml's roundf: half away from zero. */
function roundf(v: number): number {
  return v < 0 ? -Math.round(-v) : Math.round(v);
}

export function quantizeQ8_0(x: Float32Array, rowLength: number, what: string): Uint8Array {
  if (rowLength % Q8_0_BLOCK !== 0 || x.length % rowLength !== 0) {
    throw new MedloraError(`${what}: q8_0 needs rows that are a multiple of ${Q8_0_BLOCK} values, got ${rowLength}`);
  }
  const nb = x.length / Q8_0_BLOCK;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const v = Math.abs(x[o + j]!);
      if (!Number.isFinite(v))
        throw new MedloraError(`${what}: non-finite value at index ${o + j}; cannot quantize to q8_0`);
      if (v > amax) amax = v;
    }
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) dv.setInt8(b * 34 + 2 + j, roundf(Math.fround(x[o + j]! * id)));
  }
  return out;
}

/** Q8_0 bytes -> float32 values (d * q), for tests and error reports. */
export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const nb = bytes.length / 34;
  const out = new Float32Array(nb * Q8_0_BLOCK);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < nb; b++) {
    const d = f16BitsToF32(dv.getUint16(b * 34, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * dv.getInt8(b * 34 + 2 + j);
  }
  return out;
}

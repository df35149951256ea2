// Safetensors dtypes, their byte sizes, and conversions between raw little-endian bytes and JS typed arrays,
// including f16 / bf16 <-> f32 (round-to-nearest-even) for tests and tools.
import { endianness } from 'node:os';

/** The dtypes medlora reads and writes (safetensors names). */
export const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
export type Dtype = (typeof DTYPES)[number];

export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && (DTYPES as readonly string[]).includes(s);
}

/** numel of a shape ([] = scalar = 1). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// Safetensors data is little-endian; viewing it through typed arrays is only right on a little-endian host.
const LITTLE_ENDIAN = endianness() === 'LE';
function assertLE(): void {
  if (!LITTLE_ENDIAN) throw new Error('medlora: typed-array views of safetensors data need a little-endian host');
}

/** Bytes viewed as the given element type (copied first when the offset is not aligned). */
function view<T>(
  bytes: Uint8Array,
  size: number,
  make: (b: ArrayBufferLike, off: number, len: number) => T,
  what: string,
): T {
  assertLE();
  if (bytes.byteLength % size !== 0) throw new Error(`${what}: ${bytes.byteLength} bytes is not a multiple of ${size}`);
  const b = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  return make(b.buffer, b.byteOffset, b.byteLength / size);
}

export const bytesAsF32 = (b: Uint8Array): Float32Array => view(b, 4, (x, o, n) => new Float32Array(x, o, n), 'F32');
export const bytesAsF64 = (b: Uint8Array): Float64Array => view(b, 8, (x, o, n) => new Float64Array(x, o, n), 'F64');
export const bytesAsU16 = (b: Uint8Array): Uint16Array => view(b, 2, (x, o, n) => new Uint16Array(x, o, n), 'F16/BF16');
export const bytesAsI32 = (b: Uint8Array): Int32Array => view(b, 4, (x, o, n) => new Int32Array(x, o, n), 'I32');
export const bytesAsI64 = (b: Uint8Array): BigInt64Array => view(b, 8, (x, o, n) => new BigInt64Array(x, o, n), 'I64');

/** The raw bytes of a typed array (no copy). */
export function typedBytes(a: ArrayBufferView): Uint8Array {
  assertLE();
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** f32 -> bf16 bits, rounding to nearest, ties to even (NaN stays a quiet NaN with its sign). */
export function f32ToBf16Bits(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return ((u >>> 16) & 0x8000) | 0x7fc0;
  // add 0x7fff plus the lowest kept bit: rounds half to even; overflow into the exponent gives inf correctly
  const rounded = (u + 0x7fff + ((u >>> 16) & 1)) >>> 0;
  return rounded >>> 16;
}

export function bf16BitsToF32(h: number): number {
  u32buf[0] = (h & 0xffff) << 16;
  return f32buf[0]!;
}

/** f32 -> IEEE half bits, round to nearest even; overflow -> inf, tiny -> subnormal / signed zero. */
export function f32ToF16Bits(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15; // half exponent
  if (e >= 0x1f) return sign | 0x7c00; // too large: inf
  if (e <= 0) {
    // subnormal half (or zero): shift the full 24-bit significand right, rounding to nearest even
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e; // 13 (f32->f16 mantissa) + 1 - e
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rem > half || (rem === half && m & 1)) m++;
    return sign | m; // m may carry into the exponent field: that is the correct smallest normal
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // carry may overflow into inf: correct
  return h;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function f32ToBf16(a: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToBf16Bits(a[i]!);
  return out;
}
export function bf16ToF32(a: ArrayLike<number>): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = bf16BitsToF32(a[i]!);
  return out;
}
export function f32ToF16(a: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToF16Bits(a[i]!);
  return out;
}
export function f16ToF32(a: ArrayLike<number>): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f16BitsToF32(a[i]!);
  return out;
}

/** Decode raw tensor bytes of any float/int dtype to numbers (I64 via Number: exact below 2^53). */
export function bytesToNumbers(dtype: Dtype, bytes: Uint8Array): Float64Array {
  switch (dtype) {
    case 'F64':
      return Float64Array.from(bytesAsF64(bytes));
    case 'F32':
      return Float64Array.from(bytesAsF32(bytes));
    case 'F16':
      return Float64Array.from(f16ToF32(bytesAsU16(bytes)));
    case 'BF16':
      return Float64Array.from(bf16ToF32(bytesAsU16(bytes)));
    case 'I64':
      return Float64Array.from(bytesAsI64(bytes), (v) => Number(v));
    case 'I32':
      return Float64Array.from(bytesAsI32(bytes));
    case 'I16':
      return Float64Array.from(view(bytes, 2, (x, o, n) => new Int16Array(x, o, n), 'I16'));
    case 'I8':
      return Float64Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    case 'U8':
    case 'BOOL':
      return Float64Array.from(bytes);
  }
}

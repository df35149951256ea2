// GGUF v3 file writer: typed metadata key/values, tensor infos and the aligned tensor data area, written in one pass to
// a temporary file that is renamed into place. Format: ggml's docs/gguf.md (magic "GGUF", version 3, u64 counts,
// strings as u64 length + UTF-8, tensor dims innermost-first, offsets relative to the data area, alignment 32);
// value type and ggml type numbers from gguf-py constants.py (GGUFValueType, GGMLQuantizationType).
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { MedloraError } from '../util/errors.js';

/** GGUFValueType (gguf-py constants.py). */
export const GGUF_VALUE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;
export type ScalarKind = Exclude<keyof typeof GGUF_VALUE, 'array'>;

/** ggml tensor types written here (GGMLQuantizationType numbers). */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPE;

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

export type GgufScalar = { kind: ScalarKind; value: number | bigint | boolean | string };
export type GgufValue =
  GgufScalar | { kind: 'array'; of: ScalarKind; values: ReadonlyArray<number | bigint | boolean | string> };

/** Metadata helpers: gguf.u32(5), gguf.str('llama'), gguf.arr('string', [...]). */
export const gguf = {
  u32: (v: number): GgufScalar => ({ kind: 'u32', value: v }),
  i32: (v: number): GgufScalar => ({ kind: 'i32', value: v }),
  u64: (v: number | bigint): GgufScalar => ({ kind: 'u64', value: v }),
  f32: (v: number): GgufScalar => ({ kind: 'f32', value: v }),
  bool: (v: boolean): GgufScalar => ({ kind: 'bool', value: v }),
  str: (v: string): GgufScalar => ({ kind: 'string', value: v }),
  arr: (of: ScalarKind, values: ReadonlyArray<number | bigint | boolean | string>): GgufValue => ({
    kind: 'array',
    of,
    values,
  }),
};

/** One tensor to write: `shape` in PyTorch order (outermost first); the file stores it reversed (ggml's ne). */
export interface GgufTensor {
  name: string;
  shape: number[];
  type: GgmlType;
  /** the encoded bytes (exactly ggmlByteSize(type, shape)); called once, while writing */
  data: () => Uint8Array;
}

/** Elements per block and bytes per block of each type (ggml.c type_traits). */
const BLOCK: Record<GgmlType, { elems: number; bytes: number }> = {
  F32: { elems: 1, bytes: 4 },
  F16: { elems: 1, bytes: 2 },
  BF16: { elems: 1, bytes: 2 },
  Q8_0: { elems: 32, bytes: 34 },
};

export function ggmlByteSize(type: GgmlType, shape: readonly number[]): number {
  const n = shape.reduce((a, b) => a * b, 1);
  const inner = shape.length ? shape[shape.length - 1]! : 1;
  const b = BLOCK[type];
  if (inner % b.elems !== 0)
    throw new MedloraError(`gguf: a ${type} tensor's rows must be a multiple of ${b.elems} values, got ${inner}`);
  return (n / b.elems) * b.bytes;
}

/** Little-endian byte builder for the header. */
class Bytes {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }
  u8(v: number): void {
    this.grow(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  i8(v: number): void {
    this.grow(1);
    this.view.setInt8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.grow(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  i16(v: number): void {
    this.grow(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.grow(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.grow(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.grow(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.grow(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  u64(v: number | bigint): void {
    this.grow(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  i64(v: number | bigint): void {
    this.grow(8);
    this.view.setBigInt64(this.length, BigInt(v), true);
    this.length += 8;
  }
  raw(b: Uint8Array): void {
    this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.raw(b);
  }
  pad(align: number): void {
    while (this.length % align !== 0) this.u8(0);
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeScalar(out: Bytes, kind: ScalarKind, v: number | bigint | boolean | string, key: string): void {
  const num = (): number => {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new MedloraError(`gguf: metadata "${key}" needs a finite ${kind}, got ${String(v)}`);
    return v;
  };
  const int = (lo: number, hi: number): number => {
    const n = num();
    if (!Number.isInteger(n) || n < lo || n > hi)
      throw new MedloraError(`gguf: metadata "${key}" = ${n} does not fit a ${kind}`);
    return n;
  };
  switch (kind) {
    case 'u8':
      out.u8(int(0, 0xff));
      break;
    case 'i8':
      out.i8(int(-0x80, 0x7f));
      break;
    case 'u16':
      out.u16(int(0, 0xffff));
      break;
    case 'i16':
      out.i16(int(-0x8000, 0x7fff));
      break;
    case 'u32':
      out.u32(int(0, 0xffffffff));
      break;
    case 'i32':
      out.i32(int(-0x80000000, 0x7fffffff));
      break;
    case 'f32':
      out.f32(num());
      break;
    case 'f64':
      out.f64(num());
      break;
    case 'u64':
      out.u64(typeof v === 'bigint' ? v : int(0, Number.MAX_SAFE_INTEGER));
      break;
    case 'i64':
      out.i64(typeof v === 'bigint' ? v : int(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER));
      break;
    case 'bool':
      if (typeof v !== 'boolean') throw new MedloraError(`gguf: metadata "${key}" needs a bool, got ${String(v)}`);
      out.u8(v ? 1 : 0);
      break;
    case 'string':
      if (typeof v !== 'string') throw new MedloraError(`gguf: metadata "${key}" needs a string, got ${String(v)}`);
      out.str(v);
      break;
  }
}

/** The header (magic .. tensor infos, padded to the alignment) and the data offset of each tensor. */
export function ggufHeader(
  metadata: ReadonlyArray<[string, GgufValue]>,
  tensors: ReadonlyArray<Pick<GgufTensor, 'name' | 'shape' | 'type'>>,
  alignment = GGUF_DEFAULT_ALIGNMENT,
): { header: Uint8Array; offsets: number[]; sizes: number[]; dataBytes: number } {
  const seen = new Set<string>();
  for (const [k] of metadata) {
    if (seen.has(k)) throw new MedloraError(`gguf: metadata key "${k}" is set twice`);
    seen.add(k);
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new MedloraError(`gguf: tensor "${t.name}" is written twice`);
    names.add(t.name);
    if (new TextEncoder().encode(t.name).length > 63)
      throw new MedloraError(`gguf: tensor name "${t.name}" is longer than 63 bytes (GGML_MAX_NAME)`);
  }
  const out = new Bytes();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.length);
  for (const [key, val] of metadata) {
    out.str(key);
    out.u32(GGUF_VALUE[val.kind]);
    if (val.kind === 'array') {
      out.u32(GGUF_VALUE[val.of]);
      out.u64(val.values.length);
      for (const v of val.values) writeScalar(out, val.of, v, key);
    } else {
      writeScalar(out, val.kind, val.value, key);
    }
  }
  const offsets: number[] = [];
  const sizes: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    out.str(t.name);
    out.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) out.u64(t.shape[d]!); // ne[0] is the innermost (contiguous) dimension
    out.u32(GGML_TYPE[t.type]);
    out.u64(offset);
    const size = ggmlByteSize(t.type, t.shape);
    offsets.push(offset);
    sizes.push(size);
    offset += size;
    offset += (alignment - (offset % alignment)) % alignment;
  }
  out.pad(alignment);
  return { header: out.bytes(), offsets, sizes, dataBytes: offset };
}

export interface WriteGgufResult {
  bytes: number;
  tensors: number;
}

/**
 * Write a GGUF file atomically (temp file + rename). `onTensor(i, total, tensor)` is called after each tensor's data is
 * written (progress). A tensor whose data() returns the wrong number of bytes is an error naming it.
 */
export function writeGguf(
  path: string,
  metadata: ReadonlyArray<[string, GgufValue]>,
  tensors: ReadonlyArray<GgufTensor>,
  onTensor?: (done: number, total: number, t: GgufTensor) => void,
): WriteGgufResult {
  const { header, sizes } = ggufHeader(metadata, tensors);
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    let pos = 0;
    const put = (b: Uint8Array): void => {
      let o = 0;
      while (o < b.length) o += writeSync(fd!, b, o, b.length - o, pos + o);
      pos += b.length;
    };
    put(header);
    const zeros = new Uint8Array(GGUF_DEFAULT_ALIGNMENT);
    tensors.forEach((t, i) => {
      const data = t.data();
      if (data.length !== sizes[i])
        throw new MedloraError(
          `gguf: tensor "${t.name}" (${t.type} [${t.shape.join(', ')}]) has ${data.length} bytes, expected ${sizes[i]}`,
        );
      put(data);
      const pad = (GGUF_DEFAULT_ALIGNMENT - (pos % GGUF_DEFAULT_ALIGNMENT)) % GGUF_DEFAULT_ALIGNMENT;
      if (pad) put(zeros.subarray(0, pad));
      onTensor?.(i + 1, tensors.length, t);
    });
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
    return { bytes: pos, tensors: tensors.length };
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    if (e instanceof MedloraError) throw e;
    throw new MedloraError(`${path}: cannot write the GGUF file (${(e as Error).message})`);
  }
}

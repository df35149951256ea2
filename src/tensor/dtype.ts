// Element types and devices of the tensor facade, with the byte sizes and the JS typed arrays they map to.

export type DType = 'f32' | 'f64' | 'bf16' | 'f16' | 'i64' | 'i32' | 'i8' | 'u8' | 'bool';
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export const DTYPES: readonly DType[] = ['f32', 'f64', 'bf16', 'f16', 'i64', 'i32', 'i8', 'u8', 'bool'];

/** Bytes per element. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  f32: 4,
  f64: 8,
  bf16: 2,
  f16: 2,
  i64: 8,
  i32: 4,
  i8: 1,
  u8: 1,
  bool: 1,
};

export function isFloatDType(d: DType): boolean {
  return d === 'f32' || d === 'f64' || d === 'bf16' || d === 'f16';
}

export function isDType(s: string): s is DType {
  return (DTYPES as readonly string[]).includes(s);
}

/** What toArray() returns for each dtype (bf16 / f16 come out widened to f32). */
export type TypedArrayFor<D extends DType> = D extends 'f32' | 'bf16' | 'f16'
  ? Float32Array
  : D extends 'f64'
    ? Float64Array
    : D extends 'i64'
      ? BigInt64Array
      : D extends 'i32'
        ? Int32Array
        : D extends 'i8'
          ? Int8Array
          : Uint8Array;

export type AnyTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

// The one table between safetensors dtype names (F32, BF16, ...) and engine dtypes (f32, bf16, ...), and the copy of
// an engine tensor into the bytes the safetensors writers take. Every reader and writer of tensors uses these.
import type { DType, Tensor } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';
import type { Dtype } from './dtype.js';
import type { TensorData } from './safetensors.js';

/** safetensors -> engine (I16 has no engine counterpart) */
const TO_ENGINE: Partial<Record<Dtype, DType>> = {
  F32: 'f32',
  F64: 'f64',
  BF16: 'bf16',
  F16: 'f16',
  I64: 'i64',
  I32: 'i32',
  I8: 'i8',
  U8: 'u8',
  BOOL: 'bool',
};
/** engine -> safetensors (every engine dtype has one) */
const TO_FILE: Record<DType, Dtype> = {
  f32: 'F32',
  f64: 'F64',
  bf16: 'BF16',
  f16: 'F16',
  i64: 'I64',
  i32: 'I32',
  i8: 'I8',
  u8: 'U8',
  bool: 'BOOL',
};

/** The engine dtype of a safetensors dtype; `what` names the tensor in the error. */
export function engineDType(d: Dtype, what: string): DType {
  const e = TO_ENGINE[d];
  if (!e) throw new MedloraError(`${what}: dtype ${d} is not supported by the engine`);
  return e;
}

/** The engine dtype of a floating safetensors dtype, or undefined for integer / boolean ones. */
export function floatingEngineDType(d: Dtype): 'f32' | 'f64' | 'bf16' | 'f16' | undefined {
  const e = TO_ENGINE[d];
  return e === 'f32' || e === 'f64' || e === 'bf16' || e === 'f16' ? e : undefined;
}

/** The safetensors dtype name of an engine dtype. */
export function fileDType(d: DType): Dtype {
  return TO_FILE[d];
}

/** A tensor as the safetensors writers take it (contiguous bytes copied off the engine, on CPU). */
export function tensorData(t: Tensor): TensorData {
  const c = t.device === 'cpu' ? t : t.to('cpu');
  return { dtype: TO_FILE[c.dtype], shape: [...c.shape], data: c.contiguous().toBytes() };
}

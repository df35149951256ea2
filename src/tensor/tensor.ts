// The typed Tensor facade over the native engine: creation, conversion, ops as methods (names mirror torch in
// camelCase), autograd flags, and disposal (explicit dispose(), scope(), `using`, or the GC finalizer as a backstop).
// Over ~400 lines on purpose: the Tensor class is one facade, one short method per native op; splitting it would split
// the class.
import { N, type Handle } from './native.js';
import { DTYPE_SIZE, isDType, type AnyTypedArray, type Device, type DType } from './dtype.js';
import { setTrackedPredicate, track } from './scope.js';

/** A tensor or a plain number (broadcast like a Python scalar). */
export type TensorLike = Tensor | number;

/** An error in the engine's style ("medlora engine: <op>: ...", engine: true) raised on the TS side. */
export function engineError(op: string, message: string): Error {
  return Object.assign(new Error(`medlora engine: ${op}: ${message}`), { engine: true, op });
}

function h(x: TensorLike): Handle | number {
  return typeof x === 'number' ? x : x.h;
}

/** Wrap a native result handle. */
function T(x: unknown): Tensor {
  return new Tensor(x as Handle);
}

function TL(x: unknown): Tensor[] {
  return (x as Handle[]).map((hh) => new Tensor(hh));
}

export class Tensor {
  /** the native handle; only the engine facade should use it */
  readonly h: Handle;
  private _shape: number[] | undefined;
  private _dtype: DType | undefined;

  constructor(handle: Handle) {
    this.h = handle;
    track(this);
  }

  // ---- metadata
  get shape(): readonly number[] {
    return (this._shape ??= N.shape(this.h) as number[]);
  }
  get dtype(): DType {
    return (this._dtype ??= N.dtype(this.h) as DType);
  }
  get device(): Device {
    return N.device(this.h) as Device;
  }
  get strides(): readonly number[] {
    return N.strides(this.h) as number[];
  }
  get numel(): number {
    return N.numel(this.h) as number;
  }
  /** number of dimensions */
  get ndim(): number {
    return this.shape.length;
  }
  get requiresGrad(): boolean {
    return N.requiresGrad(this.h) as boolean;
  }
  get isContiguous(): boolean {
    return N.isContiguous(this.h) as boolean;
  }
  get isLeaf(): boolean {
    return N.isLeaf(this.h) as boolean;
  }
  /** size of one dimension (negative counts from the end) */
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw engineError('size', `dimension ${dim} out of range for shape [${s.join(',')}]`);
    return s[d]!;
  }
  /** e.g. "f32[2,3]" */
  toString(): string {
    return N.isDisposed(this.h) ? 'Tensor(disposed)' : `Tensor(${N.describe(this.h) as string})`;
  }

  // ---- lifetime
  /** Free the native memory now; later use throws "tensor was disposed". Safe to call twice. */
  dispose(): void {
    N.dispose(this.h);
  }
  get disposed(): boolean {
    return N.isDisposed(this.h) as boolean;
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- conversion
  /** A copy of the data as a typed array matching the dtype (bf16/f16 widened to Float32Array, bool as Uint8Array). */
  toArray(): AnyTypedArray {
    return N.toArray(this.h) as AnyTypedArray;
  }
  toFloat32Array(): Float32Array {
    return N.toFloat32Array(this.h) as Float32Array;
  }
  /** Plain numbers (i64 values beyond 2^53 lose precision). */
  toNumbers(): number[] {
    const a = this.toArray();
    return a instanceof BigInt64Array ? Array.from(a, (v) => Number(v)) : Array.from(a as ArrayLike<number>);
  }
  /** Raw little-endian bytes of the tensor's elements (in row-major order). */
  toBytes(): Uint8Array {
    return N.toBytes(this.h) as Uint8Array;
  }
  /** The value of a one-element tensor (bool tensors give 0 or 1). */
  item(): number {
    const v = N.item(this.h) as number | boolean;
    return typeof v === 'boolean' ? Number(v) : v;
  }

  // ---- elementwise
  add(o: TensorLike, alpha?: number): Tensor {
    return T(N.add(this.h, h(o), alpha));
  }
  sub(o: TensorLike, alpha?: number): Tensor {
    return T(N.sub(this.h, h(o), alpha));
  }
  mul(o: TensorLike): Tensor {
    return T(N.mul(this.h, h(o)));
  }
  div(o: TensorLike): Tensor {
    return T(N.div(this.h, h(o)));
  }
  pow(o: TensorLike): Tensor {
    return T(N.pow(this.h, h(o)));
  }
  maximum(o: TensorLike): Tensor {
    return T(N.maximum(this.h, h(o)));
  }
  minimum(o: TensorLike): Tensor {
    return T(N.minimum(this.h, h(o)));
  }
  remainder(o: TensorLike): Tensor {
    return T(N.remainder(this.h, h(o)));
  }
  floorDivide(o: TensorLike): Tensor {
    return T(N.floorDivide(this.h, h(o)));
  }
  neg(): Tensor {
    return T(N.neg(this.h));
  }
  sqrt(): Tensor {
    return T(N.sqrt(this.h));
  }
  rsqrt(): Tensor {
    return T(N.rsqrt(this.h));
  }
  exp(): Tensor {
    return T(N.exp(this.h));
  }
  log(): Tensor {
    return T(N.log(this.h));
  }
  abs(): Tensor {
    return T(N.abs(this.h));
  }
  sin(): Tensor {
    return T(N.sin(this.h));
  }
  cos(): Tensor {
    return T(N.cos(this.h));
  }
  tanh(): Tensor {
    return T(N.tanh(this.h));
  }
  sigmoid(): Tensor {
    return T(N.sigmoid(this.h));
  }
  relu(): Tensor {
    return T(N.relu(this.h));
  }
  silu(): Tensor {
    return T(N.silu(this.h));
  }
  square(): Tensor {
    return T(N.square(this.h));
  }
  reciprocal(): Tensor {
    return T(N.reciprocal(this.h));
  }
  floor(): Tensor {
    return T(N.floor(this.h));
  }
  round(): Tensor {
    return T(N.round(this.h));
  }
  sign(): Tensor {
    return T(N.sign(this.h));
  }
  isfinite(): Tensor {
    return T(N.isfinite(this.h));
  }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return T(N.gelu(this.h, approximate));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return T(N.clamp(this.h, min ?? undefined, max ?? undefined));
  }
  softmax(dim: number, dtype?: DType): Tensor {
    return T(N.softmax(this.h, dim, dtype));
  }
  logSoftmax(dim: number, dtype?: DType): Tensor {
    return T(N.logSoftmax(this.h, dim, dtype));
  }
  dropout(p: number, train = true): Tensor {
    return T(N.dropout(this.h, p, train));
  }

  // ---- comparisons / logic / bits
  eq(o: TensorLike): Tensor {
    return T(N.eq(this.h, h(o)));
  }
  ne(o: TensorLike): Tensor {
    return T(N.ne(this.h, h(o)));
  }
  lt(o: TensorLike): Tensor {
    return T(N.lt(this.h, h(o)));
  }
  le(o: TensorLike): Tensor {
    return T(N.le(this.h, h(o)));
  }
  gt(o: TensorLike): Tensor {
    return T(N.gt(this.h, h(o)));
  }
  ge(o: TensorLike): Tensor {
    return T(N.ge(this.h, h(o)));
  }
  logicalNot(): Tensor {
    return T(N.logicalNot(this.h));
  }
  logicalAnd(o: TensorLike): Tensor {
    return T(N.logicalAnd(this.h, h(o)));
  }
  logicalOr(o: TensorLike): Tensor {
    return T(N.logicalOr(this.h, h(o)));
  }
  bitwiseNot(): Tensor {
    return T(N.bitwiseNot(this.h));
  }
  bitwiseAnd(o: TensorLike): Tensor {
    return T(N.bitwiseAnd(this.h, h(o)));
  }
  bitwiseOr(o: TensorLike): Tensor {
    return T(N.bitwiseOr(this.h, h(o)));
  }
  bitwiseXor(o: TensorLike): Tensor {
    return T(N.bitwiseXor(this.h, h(o)));
  }
  bitwiseLeftShift(o: TensorLike): Tensor {
    return T(N.bitwiseLeftShift(this.h, h(o)));
  }
  bitwiseRightShift(o: TensorLike): Tensor {
    return T(N.bitwiseRightShift(this.h, h(o)));
  }
  maskedFill(mask: Tensor, value: TensorLike): Tensor {
    return T(N.maskedFill(this.h, mask.h, h(value)));
  }

  // ---- linear algebra / nn
  matmul(o: Tensor): Tensor {
    return T(N.matmul(this.h, o.h));
  }

  // ---- shape
  reshape(shape: readonly number[]): Tensor {
    return T(N.reshape(this.h, shape));
  }
  view(shape: readonly number[]): Tensor {
    return T(N.view(this.h, shape));
  }
  transpose(d0: number, d1: number): Tensor {
    return T(N.transpose(this.h, d0, d1));
  }
  permute(dims: readonly number[]): Tensor {
    return T(N.permute(this.h, dims));
  }
  contiguous(): Tensor {
    return T(N.contiguous(this.h));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return T(N.flatten(this.h, startDim, endDim));
  }
  squeeze(dim?: number): Tensor {
    return T(N.squeeze(this.h, dim));
  }
  unsqueeze(dim: number): Tensor {
    return T(N.unsqueeze(this.h, dim));
  }
  expand(shape: readonly number[]): Tensor {
    return T(N.expand(this.h, shape));
  }
  repeat(reps: readonly number[]): Tensor {
    return T(N.repeat(this.h, reps));
  }
  repeatInterleave(repeats: number | Tensor, dim?: number): Tensor {
    return T(N.repeatInterleave(this.h, h(repeats), dim));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return T(N.narrow(this.h, dim, start, length));
  }
  /** like Python's x[start:end:step] along dim (end exclusive, negative counts from the end) */
  slice(dim: number, start?: number, end?: number, step?: number): Tensor {
    return T(N.slice(this.h, dim, start, end, step));
  }
  select(dim: number, index: number): Tensor {
    return T(N.select(this.h, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return T(N.indexSelect(this.h, dim, index.h));
  }
  gather(dim: number, index: Tensor): Tensor {
    return T(N.gather(this.h, dim, index.h));
  }
  scatter(dim: number, index: Tensor, src: TensorLike): Tensor {
    return T(N.scatter(this.h, dim, index.h, h(src)));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return T(N.scatterAdd(this.h, dim, index.h, src.h));
  }
  split(sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
    return TL(N.split(this.h, sizeOrSizes, dim));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return TL(N.chunk(this.h, chunks, dim));
  }
  triu(diagonal = 0): Tensor {
    return T(N.triu(this.h, diagonal));
  }
  tril(diagonal = 0): Tensor {
    return T(N.tril(this.h, diagonal));
  }
  flip(dims: readonly number[]): Tensor {
    return T(N.flip(this.h, dims));
  }
  nonzero(): Tensor {
    return T(N.nonzero(this.h));
  }

  // ---- reductions
  sum(dim?: number | readonly number[], keepdim = false, dtype?: DType): Tensor {
    return T(N.sum(this.h, dim, keepdim, dtype));
  }
  mean(dim?: number | readonly number[], keepdim = false): Tensor {
    return T(N.mean(this.h, dim, keepdim));
  }
  /** max over everything, or the max values along dim */
  max(dim?: number, keepdim = false): Tensor {
    return T(N.max(this.h, dim, keepdim));
  }
  min(dim?: number, keepdim = false): Tensor {
    return T(N.min(this.h, dim, keepdim));
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return T(N.argmax(this.h, dim, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return T(N.argmin(this.h, dim, keepdim));
  }
  any(): Tensor {
    return T(N.any(this.h));
  }
  all(): Tensor {
    return T(N.all(this.h));
  }
  topk(k: number, dim = -1, largest = true, sorted = true): [values: Tensor, indices: Tensor] {
    return TL(N.topk(this.h, k, dim, largest, sorted)) as [Tensor, Tensor];
  }
  sort(dim = -1, descending = false): [values: Tensor, indices: Tensor] {
    return TL(N.sort(this.h, dim, descending)) as [Tensor, Tensor];
  }
  cumsum(dim: number): Tensor {
    return T(N.cumsum(this.h, dim));
  }
  norm(p = 2, dim?: number | readonly number[], keepdim = false): Tensor {
    return T(N.norm(this.h, p, dim, keepdim));
  }
  multinomial(numSamples: number, replacement = false): Tensor {
    return T(N.multinomial(this.h, numSamples, replacement));
  }

  // ---- casts, copies, in-place
  /** Cast and/or move; returns a new handle (sharing storage when nothing changes). */
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    if (typeof target === 'string') {
      return isDType(target) ? T(N.to(this.h, target, undefined)) : T(N.to(this.h, undefined, target));
    }
    return T(N.to(this.h, target.dtype, target.device));
  }
  float(): Tensor {
    return T(N.to(this.h, 'f32', undefined));
  }
  detach(): Tensor {
    return T(N.detach(this.h));
  }
  clone(): Tensor {
    return T(N.clone(this.h));
  }
  copy_(src: Tensor): this {
    N.copy_(this.h, src.h);
    return this;
  }
  zero_(): this {
    N.zero_(this.h);
    return this;
  }
  fill_(value: number): this {
    N.fill_(this.h, value);
    return this;
  }
  mul_(o: TensorLike): this {
    N.mul_(this.h, h(o));
    return this;
  }
  add_(o: TensorLike, alpha?: number): this {
    N.add_(this.h, h(o), alpha);
    return this;
  }

  // ---- autograd
  requiresGrad_(on = true): this {
    N.requiresGrad_(this.h, on);
    return this;
  }
  /** The accumulated gradient (a new handle each read; it shares storage with the gradient), or null. */
  get grad(): Tensor | null {
    const g = N.grad(this.h) as Handle | null;
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    N.setGrad(this.h, g?.h);
  }
  /** Drop the gradient (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    N.zeroGrad(this.h);
  }
  /** Back-propagate from this tensor (a scalar unless gradOutput is given); accumulates into leaves' .grad. */
  backward(gradOutput?: Tensor, retainGraph = false): void {
    N.backward(this.h, gradOutput?.h, retainGraph);
  }
}

setTrackedPredicate((v: unknown): v is Tensor => v instanceof Tensor);

/** Wrap a handle that the native engine returned (for other parts of the facade). */
export function fromHandle(hh: Handle): Tensor {
  return new Tensor(hh);
}

// ---------------------------------------------------------------------------------------------------------------
// creation

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

type Nested = number | boolean | readonly Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = (cur as readonly Nested[])[0] as Nested;
    if (cur === undefined) break;
  }
  return shape;
}

function flattenNested(data: Nested, shape: readonly number[], depth: number, out: (number | boolean)[]): void {
  if (depth === shape.length) {
    if (typeof data !== 'number' && typeof data !== 'boolean') {
      throw engineError('tensor', `ragged nested array (expected a number at depth ${depth})`);
    }
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw engineError('tensor', `ragged nested array (expected length ${shape[depth]} at depth ${depth})`);
  }
  for (const d of data as readonly Nested[]) flattenNested(d, shape, depth + 1, out);
}

/** JS values -> the typed array the native side copies from (its kind is cast to dtype natively if needed). */
function toTyped(values: readonly (number | boolean)[], dtype: DType): AnyTypedArray {
  switch (dtype) {
    case 'f64':
      return Float64Array.from(values, Number);
    case 'i64':
      return BigInt64Array.from(values, (v) => BigInt(checkInt(v, dtype)));
    case 'i32':
      return Int32Array.from(values, (v) => checkInt(v, dtype));
    case 'i8':
      return Int8Array.from(values, (v) => checkInt(v, dtype));
    case 'u8':
      return Uint8Array.from(values, (v) => checkInt(v, dtype));
    case 'bool':
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
    default:
      return Float32Array.from(values, Number);
  }
}

function checkInt(v: number | boolean, dtype: DType): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw engineError('tensor', `${dtype} data must be integers, got ${v}`);
  return n;
}

function typedDType(a: AnyTypedArray): DType {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof BigInt64Array) return 'i64';
  if (a instanceof Int32Array) return 'i32';
  if (a instanceof Int8Array) return 'i8';
  return 'u8';
}

function finish(t: Tensor, o: CreateOptions | undefined): Tensor {
  if (o?.requiresGrad) t.requiresGrad_(true);
  return t;
}

/**
 * A tensor from JS data (a copy). Nested arrays give their own shape; flat arrays and typed arrays take
 * `opts.shape` (default 1-D). Default dtype: the typed array's, else f32 (bool for boolean arrays).
 */
export function tensor(data: Nested | AnyTypedArray, opts: CreateOptions & { shape?: readonly number[] } = {}): Tensor {
  let typed: AnyTypedArray;
  let shape: readonly number[];
  let dtype: DType;
  if (ArrayBuffer.isView(data)) {
    typed = data;
    dtype = opts.dtype ?? typedDType(data);
    shape = opts.shape ?? [data.length];
  } else {
    const nestedShape = inferShape(data);
    const flat: (number | boolean)[] = [];
    flattenNested(data, nestedShape, 0, flat);
    dtype = opts.dtype ?? (typeof flat[0] === 'boolean' ? 'bool' : 'f32');
    shape = opts.shape ?? nestedShape;
    typed = toTyped(flat, dtype);
  }
  return finish(T(N.fromTyped(typed, dtype, shape, opts.device)), opts);
}

/** A 0-d tensor. */
export function scalar(value: number, opts: CreateOptions = {}): Tensor {
  return tensor([value], { ...opts, shape: [] });
}

/** A tensor from raw little-endian bytes (copied); the byte count must match dtype x shape exactly. */
export function fromBytes(bytes: Uint8Array, dtype: DType, shape: readonly number[]): Tensor {
  return T(N.fromBytes(bytes, dtype, shape));
}

/** Read dtype x shape bytes at byteOffset of a file straight into a new tensor's storage (safetensors loading). */
export function fromFile(path: string, byteOffset: number, dtype: DType, shape: readonly number[]): Tensor {
  return T(N.fromFile(path, byteOffset, dtype, shape));
}

export function zeros(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return finish(T(N.zeros(shape, o.dtype ?? 'f32', o.device)), o);
}
export function ones(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return finish(T(N.ones(shape, o.dtype ?? 'f32', o.device)), o);
}
export function full(shape: readonly number[], value: number, o: CreateOptions = {}): Tensor {
  return finish(T(N.full(shape, value, o.dtype ?? 'f32', o.device)), o);
}
export function empty(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return finish(T(N.empty(shape, o.dtype ?? 'f32', o.device)), o);
}
/** [start, end) by step; default dtype i64 when all arguments are integers, else f32 (torch's rule). */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  const dtype = o.dtype ?? ([s, e, step].every(Number.isInteger) ? 'i64' : 'f32');
  return finish(T(N.arange(s, e, step, dtype, o.device)), o);
}
export function linspace(start: number, end: number, steps: number, o: CreateOptions = {}): Tensor {
  return finish(T(N.linspace(start, end, steps, o.dtype ?? 'f32', o.device)), o);
}
/** Standard normal samples (seed with manualSeed). */
export function randn(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return finish(T(N.randn(shape, o.dtype ?? 'f32', o.device)), o);
}
/** Uniform samples in [0, 1). */
export function rand(shape: readonly number[], o: CreateOptions = {}): Tensor {
  return finish(T(N.rand(shape, o.dtype ?? 'f32', o.device)), o);
}
/** Integers uniform in [low, high). */
export function randint(low: number, high: number, shape: readonly number[], o: CreateOptions = {}): Tensor {
  return finish(T(N.randint(low, high, shape, o.dtype ?? 'i64', o.device)), o);
}

/** Bytes a dtype x shape tensor needs. */
export function byteSize(dtype: DType, shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
}

// ---------------------------------------------------------------------------------------------------------------
// free functions (the multi-input ops, plus aliases of common methods)

export const add = (a: Tensor, b: TensorLike, alpha?: number): Tensor => a.add(b, alpha);
export const sub = (a: Tensor, b: TensorLike, alpha?: number): Tensor => a.sub(b, alpha);
export const mul = (a: Tensor, b: TensorLike): Tensor => a.mul(b);
export const div = (a: Tensor, b: TensorLike): Tensor => a.div(b);
export const matmul = (a: Tensor, b: Tensor): Tensor => a.matmul(b);

/** x @ w^T + b, with w [out, in] (torch.nn.functional.linear). */
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  return T(N.linear(x.h, w.h, b?.h));
}
/** Rows of weight [vocab, dim] picked by integer ids (any shape). */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  return T(N.embedding(weight.h, ids.h));
}
export function layerNorm(
  x: Tensor,
  normalizedShape: readonly number[],
  w?: Tensor | null,
  b?: Tensor | null,
  eps = 1e-5,
): Tensor {
  return T(N.layerNorm(x.h, normalizedShape, w?.h, b?.h, eps));
}
/** HF RMSNorm: w * (x.float() * rsqrt(mean(x.float()^2, -1) + eps)).to(x.dtype). */
export function rmsNorm(x: Tensor, w: Tensor, eps = 1e-6): Tensor {
  return T(N.rmsNorm(x.h, w.h, eps));
}
export function softmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return x.softmax(dim, dtype);
}
export function logSoftmax(x: Tensor, dim: number, dtype?: DType): Tensor {
  return x.logSoftmax(dim, dtype);
}
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return x.gelu(approximate);
}
export function silu(x: Tensor): Tensor {
  return x.silu();
}
export function dropout(x: Tensor, p: number, train = true): Tensor {
  return x.dropout(p, train);
}
/** Whether the loaded addon has nf4Dequantize (an addon built before native/src/nf4.cc existed has not). */
export function hasNativeNf4(): boolean {
  return typeof N.nf4Dequantize === 'function';
}
/**
 * NF4 dequantization in one native pass (native/src/nf4.cc; CPU tensors only): element i of the [n] result is
 * NF4 level[code] * absmax[i / blockSize] in F32, rounded once to `dtype`, its 4-bit code in the high nibble of byte
 * i / 2 for even i and the low nibble for odd i. codes: u8 [ceil(n / blockSize) * blockSize / 2], absmax: f32
 * [ceil(n / blockSize)], both contiguous. The NF4 format itself lives in src/adapt/nf4.ts.
 */
export function nf4Dequantize(codes: Tensor, absmax: Tensor, blockSize: number, n: number, dtype: DType): Tensor {
  return T(N.nf4Dequantize(codes.h, absmax.h, blockSize, n, dtype));
}

export interface AttentionOptions {
  /** bool (true = may attend) or additive float mask, broadcastable to [..., L, S] */
  mask?: Tensor | null;
  isCausal?: boolean;
  /** default 1/sqrt(head_dim) */
  scale?: number;
  dropoutP?: number;
}
/** softmax(q k^T * scale + mask) v over [..., L, E] x [..., S, E] x [..., S, Ev] (torch's SDPA semantics). */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  return T(N.scaledDotProductAttention(q.h, k.h, v.h, o.mask?.h, o.isCausal ?? false, o.scale, o.dropoutP ?? 0));
}

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  reduction?: 'mean' | 'sum' | 'none';
}
/** Cross-entropy of logits [N, C] against i64 targets [N]; targets equal to ignoreIndex (-100) do not count. */
export function crossEntropy(logits: Tensor, targets: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return T(N.crossEntropy(logits.h, targets.h, o.ignoreIndex ?? -100, o.reduction ?? 'mean'));
}

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return T(
    N.cat(
      tensors.map((t) => t.h),
      dim,
    ),
  );
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return T(
    N.stack(
      tensors.map((t) => t.h),
      dim,
    ),
  );
}
/** cond ? a : b elementwise (cond must be bool). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  return T(N.where(cond.h, h(a), h(b)));
}

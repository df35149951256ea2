// Forward checks of representative engine ops against values computed by hand (the arithmetic is written out).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose } from '../../src/util/close.js';
import * as T from '../../src/tensor/index.js';

const f = (t: T.Tensor): number[] => Array.from(t.toFloat32Array());

test('creation, metadata and conversion', () => {
  const a = T.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  assert.deepEqual(a.shape, [2, 3]);
  assert.equal(a.dtype, 'f32');
  assert.equal(a.device, 'cpu');
  assert.deepEqual(a.strides, [3, 1]);
  assert.equal(a.numel, 6);
  assert.deepEqual(Array.from(a.toArray() as Float32Array), [1, 2, 3, 4, 5, 6]);
  const ids = T.tensor([3, 1, 2], { dtype: 'i64' });
  assert.ok(ids.toArray() instanceof BigInt64Array);
  assert.deepEqual(ids.toNumbers(), [3, 1, 2]);
  // bf16 keeps 8 bits of mantissa: 1 + 2^-9 rounds to 1 (round-to-nearest-even), 1 + 2^-7 is exact
  const bf = T.tensor([1 + 2 ** -9, 1 + 2 ** -7], { dtype: 'bf16' });
  assert.deepEqual(Array.from(bf.toArray() as Float32Array), [1, 1 + 2 ** -7]);
  // raw bytes: 1.0f32 is 0x3f800000, little-endian 00 00 80 3f
  assert.deepEqual(Array.from(T.tensor([1]).toBytes()), [0, 0, 0x80, 0x3f]);
  const back = T.fromBytes(new Uint8Array([0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]), 'f32', [2]);
  assert.deepEqual(f(back), [1, 2]);
  assert.equal(T.scalar(2.5).item(), 2.5);
  assert.deepEqual(T.arange(4).toNumbers(), [0, 1, 2, 3]);
  assert.equal(T.arange(4).dtype, 'i64');
  assert.deepEqual(f(T.arange(0, 1, 0.25)), [0, 0.25, 0.5, 0.75]);
  assert.deepEqual(f(T.linspace(0, 1, 5)), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(f(T.full([2], 7)), [7, 7]);
});

test('elementwise arithmetic and scalars follow torch promotion', () => {
  const a = T.tensor([1, 2, 3]);
  const b = T.tensor([4, 5, 6]);
  assert.deepEqual(f(a.add(b)), [5, 7, 9]);
  assert.deepEqual(f(a.add(b, 2)), [9, 12, 15]); // a + 2b
  assert.deepEqual(f(a.sub(b)), [-3, -3, -3]);
  assert.deepEqual(f(a.mul(b)), [4, 10, 18]);
  assert.deepEqual(f(b.div(2)), [2, 2.5, 3]);
  assert.deepEqual(f(a.pow(2)), [1, 4, 9]);
  // an integer tensor times a Python-style int stays integer; times a float becomes f32
  const i = T.tensor([1, 2], { dtype: 'i64' });
  assert.equal(i.mul(3).dtype, 'i64');
  assert.equal(i.mul(0.5).dtype, 'f32');
  assert.equal(T.tensor([1], { dtype: 'bf16' }).mul(2).dtype, 'bf16');
  assertClose(f(T.tensor([0, 1]).exp()), [1, Math.E], { atol: 1e-6 });
  // silu(x) = x * sigmoid(x): silu(1) = 1/(1+e^-1) = 0.7310586
  assertClose(f(T.tensor([1]).silu()), [1 / (1 + Math.exp(-1))], { atol: 1e-6 });
  // gelu tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) at x = 1
  const g = 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (1 + 0.044715)));
  assertClose(f(T.tensor([1]).gelu('tanh')), [g], { atol: 1e-6 });
});

test('matmul, linear, softmax, norms', () => {
  // [[1,2],[3,4]] @ [[5,6],[7,8]] = [[1*5+2*7, 1*6+2*8], [3*5+4*7, 3*6+4*8]] = [[19,22],[43,50]]
  const a = T.tensor([
    [1, 2],
    [3, 4],
  ]);
  const b = T.tensor([
    [5, 6],
    [7, 8],
  ]);
  assert.deepEqual(f(a.matmul(b)), [19, 22, 43, 50]);
  // linear: x w^T + bias, w = [[1,0],[1,1]] -> x=[1,2]: [1, 3] + [10, 20]
  assert.deepEqual(
    f(
      T.linear(
        T.tensor([[1, 2]]),
        T.tensor([
          [1, 0],
          [1, 1],
        ]),
        T.tensor([10, 20]),
      ),
    ),
    [11, 23],
  );
  // softmax([0, ln 3]) = [1/4, 3/4]
  assertClose(f(T.tensor([0, Math.log(3)]).softmax(0)), [0.25, 0.75], { atol: 1e-6 });
  // rmsNorm([3, 4], w=[1, 2], eps=0): rms = sqrt((9+16)/2) = sqrt(12.5) -> [3, 8] / 3.5355339
  const r = Math.sqrt(12.5);
  assertClose(f(T.rmsNorm(T.tensor([[3, 4]]), T.tensor([1, 2]), 0)), [3 / r, 8 / r], { atol: 1e-6 });
  // layerNorm([1, 3]): mean 2, var 1 -> [-1, 1] (eps 0)
  assertClose(f(T.layerNorm(T.tensor([[1, 3]]), [2], null, null, 0)), [-1, 1], { atol: 1e-6 });
});

test('rmsNorm on bf16 normalises in f32, casts back, then scales (HF LlamaRMSNorm order)', () => {
  const x = T.tensor([[1, 2, 3, 4]], { dtype: 'bf16' });
  const w = T.tensor([1.5, 1.5, 1.5, 1.5], { dtype: 'bf16' });
  const y = T.rmsNorm(x, w, 1e-6);
  assert.equal(y.dtype, 'bf16');
  // reference composed from primitive ops in the documented order
  const xf = x.float();
  const ref = w.mul(xf.mul(xf.pow(2).mean(-1, true).add(1e-6).rsqrt()).to('bf16'));
  assert.deepEqual(f(y), f(ref));
});

test('cross-entropy with ignore index, by hand', () => {
  // row 0: logits [0, ln 3] target 1 -> -log(3/4); row 1 ignored; mean over the one counted row
  const logits = T.tensor([
    [0, Math.log(3)],
    [5, 1],
  ]);
  const targets = T.tensor([1, -100], { dtype: 'i64' });
  assertClose(f(T.crossEntropy(logits, targets)), [-Math.log(0.75)], { atol: 1e-6 });
  assertClose(f(T.crossEntropy(logits, targets, { reduction: 'none' })), [-Math.log(0.75), 0], { atol: 1e-6 });
});

test('causal attention by hand', () => {
  // one head, L = S = 2, head dim 1, q = k = [[1],[1]], v = [[1],[3]]: row 0 sees only v0 = 1, row 1 averages
  // equally (equal scores) = 2
  const q = T.tensor([[[[1], [1]]]]);
  const v = T.tensor([[[[1], [3]]]]);
  const out = T.scaledDotProductAttention(q, q, v, { isCausal: true });
  assertClose(f(out), [1, 2], { atol: 1e-6 });
  // bool mask (true = attend) hiding key 0 from both rows -> both rows read v1 = 3
  const mask = T.tensor([
    [false, true],
    [false, true],
  ]);
  assertClose(f(T.scaledDotProductAttention(q, q, v, { mask })), [3, 3], { atol: 1e-6 });
});

test('shape and indexing ops', () => {
  const a = T.arange(6, undefined, 1, { dtype: 'f32' }).reshape([2, 3]); // [[0,1,2],[3,4,5]]
  assert.deepEqual(f(a.transpose(0, 1)), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(f(a.slice(1, 0, 3, 2)), [0, 2, 3, 5]);
  assert.deepEqual(f(a.select(0, 1)), [3, 4, 5]);
  assert.deepEqual(f(a.narrow(1, 1, 2)), [1, 2, 4, 5]);
  assert.deepEqual(f(a.indexSelect(1, T.tensor([2, 0], { dtype: 'i64' }))), [2, 0, 5, 3]);
  assert.deepEqual(f(a.gather(1, T.tensor([[1], [2]], { dtype: 'i64' }))), [1, 5]);
  assert.deepEqual(f(T.cat([a, a], 0)), [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
  assert.deepEqual(T.stack([a, a], 1).shape, [2, 2, 3]);
  assert.deepEqual(
    a.split(1, 1).map((t) => f(t)),
    [
      [0, 3],
      [1, 4],
      [2, 5],
    ],
  );
  assert.deepEqual(
    a.chunk(2, 0).map((t) => f(t)),
    [
      [0, 1, 2],
      [3, 4, 5],
    ],
  );
  assert.deepEqual(f(T.ones([3, 3]).triu(1)), [0, 1, 1, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(f(a.repeatInterleave(2, 0)), [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]);
  assert.deepEqual(f(a.maskedFill(a.gt(3), -1)), [0, 1, 2, 3, -1, -1]);
  assert.deepEqual(f(T.where(a.lt(2), a, 9)), [0, 1, 9, 9, 9, 9]);
  assert.deepEqual(a.unsqueeze(0).shape, [1, 2, 3]);
  assert.deepEqual(a.unsqueeze(0).squeeze(0).shape, [2, 3]);
  assert.deepEqual(a.permute([1, 0]).contiguous().strides, [2, 1]);
  assert.deepEqual(T.ones([1, 3]).expand([2, 3]).shape, [2, 3]);
});

test('reductions', () => {
  const a = T.tensor([
    [1, 5, 3],
    [4, 2, 6],
  ]);
  assert.equal(a.sum().item(), 21);
  assert.deepEqual(f(a.sum(1)), [9, 12]);
  assert.deepEqual(f(a.mean(0)), [2.5, 3.5, 4.5]);
  assert.deepEqual(f(a.max(1)), [5, 6]);
  assert.deepEqual(a.argmax(1).toNumbers(), [1, 2]);
  assert.equal(a.min().item(), 1);
  const [vals, idx] = a.topk(2, 1);
  assert.deepEqual(f(vals), [5, 3, 6, 4]);
  assert.deepEqual(idx.toNumbers(), [1, 2, 2, 0]);
  const [sv] = T.tensor([3, 1, 2]).sort(0);
  assert.deepEqual(f(sv), [1, 2, 3]);
  assert.deepEqual(f(T.tensor([1, 2, 3]).cumsum(0)), [1, 3, 6]);
  assert.equal(T.tensor([3, 4]).norm().item(), 5);
  assert.deepEqual(f(T.tensor([-2, 0.5, 2]).clamp(-1, 1)), [-1, 0.5, 1]);
});

test('u8 bit ops pack and unpack 4-bit values', () => {
  // pack low nibble 0x3 and high nibble 0xA -> 0xA3 = 163; unpack back
  const lo = T.tensor([3], { dtype: 'u8' });
  const hi = T.tensor([10], { dtype: 'u8' });
  const packed = lo.bitwiseOr(hi.bitwiseLeftShift(4));
  assert.deepEqual(packed.toNumbers(), [163]);
  assert.deepEqual(packed.bitwiseAnd(15).toNumbers(), [3]);
  assert.deepEqual(packed.bitwiseRightShift(4).toNumbers(), [10]);
  assert.equal(packed.dtype, 'u8');
});

test('fromFile reads a slice of a file straight into a tensor', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'medlora-'));
  const p = join(dir, 'w.bin');
  // 3 header bytes, then f32 [1.5, -2] little-endian
  const buf = Buffer.alloc(11);
  buf.writeFloatLE(1.5, 3);
  buf.writeFloatLE(-2, 7);
  writeFileSync(p, buf);
  assert.deepEqual(f(T.fromFile(p, 3, 'f32', [2])), [1.5, -2]);
  assert.throws(() => T.fromFile(p, 4, 'f32', [2]), /fromFile: .*w\.bin: needs bytes \[4, 12\) .* file has 11 bytes/);
});

test('seeded randomness repeats; thread count is settable', () => {
  T.manualSeed(7);
  const a = f(T.randn([4]));
  T.manualSeed(7);
  assert.deepEqual(f(T.randn([4])), a);
  const n = T.getNumThreads();
  T.setNumThreads(1);
  assert.equal(T.getNumThreads(), 1);
  T.setNumThreads(n);
  assert.equal(T.cudaIsAvailable(), T.cudaDeviceCount() > 0);
});

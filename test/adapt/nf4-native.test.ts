// The engine's one-pass NF4 dequantize (native/src/nf4.cc via dequantizeNf4) against the ATen chain it replaces
// (dequantizeNf4Reference): bit-equal on random weights of several shapes (incl. sizes that are not a multiple of the
// block, odd sizes, an all-zero block), every float output dtype, with and without double quantization, on 1 and 2
// engine threads; an independent F32 computation written here for a small case; the checker fails a swapped nibble
// order; clear errors on bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import {
  dequantizeNf4,
  dequantizeNf4Reference,
  NF4_LEVELS,
  nf4Scales,
  quantizeNf4,
  type Nf4Tensor,
} from '../../src/adapt/nf4.js';

const ELEMENT_BYTES: Record<string, number> = { f32: 4, f64: 8, bf16: 2, f16: 2 };

/** Number of elements whose bytes differ between two tensors of the same dtype and shape. */
function differing(a: T.Tensor, b: T.Tensor): number {
  assert.equal(a.dtype, b.dtype);
  assert.deepEqual(a.shape, b.shape);
  const x = a.contiguous().toBytes(),
    y = b.contiguous().toBytes();
  assert.equal(x.length, y.length);
  const k = ELEMENT_BYTES[a.dtype]!;
  let diff = 0;
  for (let i = 0; i < x.length; i += k) {
    for (let j = 0; j < k; j++) {
      if (x[i + j] !== y[i + j]) {
        diff++;
        break;
      }
    }
  }
  return diff;
}

/** Random weights with per-row magnitudes over several decades (so scales span a range) and one all-zero block. */
function weights(shape: number[], dtype: T.DType): T.Tensor {
  return T.scope(() => {
    const n = shape.reduce((a, b) => a * b, 1);
    const mag = T.rand([n]).mul(6).sub(3).exp(); // e^[-3, 3]
    let w = T.randn([n]).mul(mag);
    if (n >= 128) w = T.cat([w.narrow(0, 0, 64), T.zeros([64]), w.narrow(0, 128, n - 128)]); // block 1 all zero
    return w.reshape(shape).to(dtype);
  });
}

test('native NF4 dequantize is bit-equal to the ATen chain: shapes, block sizes, output dtypes, double quant', () => {
  T.manualSeed(19);
  const cases: { shape: number[]; blockSize?: number }[] = [
    { shape: [64, 64] }, // whole blocks
    { shape: [37, 53] }, // 1961 elements: odd, not a multiple of 64 (padding in the last block)
    { shape: [3, 1000] }, // 3000: even, not a multiple of 64
    { shape: [1] }, // a single element (one padded block)
    { shape: [300, 211] }, // 63300 elements: above the kernel's serial grain, not a multiple of 64
    { shape: [50, 50], blockSize: 128 },
    { shape: [7, 9], blockSize: 2 },
  ];
  const before = T.getNumThreads();
  let total = 0;
  try {
    for (const threads of [1, 2]) {
      T.setNumThreads(threads);
      for (const c of cases) {
        for (const src of ['f32', 'bf16'] as const) {
          for (const doubleQuant of [false, true]) {
            T.scope(() => {
              const q = quantizeNf4(weights(c.shape, src), { blockSize: c.blockSize, doubleQuant });
              for (const out of ['f32', 'bf16', 'f16', 'f64'] as const) {
                const a = dequantizeNf4(q, out);
                const b = dequantizeNf4Reference(q, out);
                const d = differing(a, b);
                total++;
                if (d !== 0) console.log(`${c.shape} bs ${c.blockSize ?? 64} dq ${doubleQuant} -> ${out}: ${d} differ`);
                assert.equal(d, 0, `${threads} thread(s), [${c.shape}] ${src} dq=${doubleQuant} -> ${out}`);
              }
              // the default output dtype is the weight's own
              assert.equal(dequantizeNf4(q).dtype, src);
              assert.deepEqual(dequantizeNf4(q).shape, c.shape);
            });
          }
        }
      }
    }
  } finally {
    T.setNumThreads(before);
  }
  console.log(`${total} native/reference comparisons (1 and 2 threads): 0 differing elements in each`);
});

test('native NF4 dequantize equals an independent F32 computation (fround(level * absmax)) and rounds once', () => {
  T.manualSeed(7);
  T.scope(() => {
    const q = quantizeNf4(weights([5, 41], 'f32')); // 205 elements, 4 blocks, the last one partial
    const codes = q.codes.toBytes();
    const scales = nf4Scales(q).toFloat32Array();
    const levels = Float32Array.from(NF4_LEVELS);
    const want = new Float32Array(205);
    for (let i = 0; i < 205; i++) {
      const byte = codes[i >> 1]!;
      const code = i % 2 === 0 ? byte >> 4 : byte & 15;
      want[i] = Math.fround(levels[code]! * scales[Math.floor(i / 64)]!);
    }
    const got = dequantizeNf4(q, 'f32').toFloat32Array();
    let diff = 0;
    for (let i = 0; i < 205; i++) if (!Object.is(got[i], want[i])) diff++;
    console.log(`native vs hand-computed F32: ${diff} of 205 differ`);
    assert.equal(diff, 0);
    // bf16 is the F32 product rounded once (not level and scale rounded first)
    const bf = dequantizeNf4(q, 'bf16');
    assert.equal(differing(bf, T.tensor(want).reshape([5, 41]).to('bf16')), 0);
  });
});

test('the bit-equality checker fails a swapped nibble order and a one-ulp change', () => {
  T.manualSeed(3);
  T.scope(() => {
    const q = quantizeNf4(weights([16, 64], 'f32'));
    const ref = dequantizeNf4Reference(q, 'bf16');
    // the same codes with the two nibbles of every byte swapped
    const swapped: Nf4Tensor = { ...q, codes: q.codes.bitwiseLeftShift(4).bitwiseOr(q.codes.bitwiseRightShift(4)) };
    const d = differing(dequantizeNf4(swapped, 'bf16'), ref);
    console.log(`swapped nibbles: ${d} of ${ref.numel} elements differ`);
    assert.ok(d > ref.numel / 4, 'a swapped nibble order must be caught');
    // one element one ulp off (bf16 bits + 1) is one differing element
    const bytes = ref.toBytes().slice();
    bytes[2 * 100] = (bytes[2 * 100]! + 1) & 255;
    assert.equal(differing(T.fromBytes(bytes, 'bf16', ref.shape), ref), 1);
  });
});

test('nf4Dequantize: bad input is a clear engine error naming the argument, never a crash', () => {
  T.scope(() => {
    const q = quantizeNf4(T.randn([10, 64])); // 10 blocks: codes u8 [320], absmax f32 [10]
    const codes = q.codes,
      absmax = q.absmax!;
    const bad: [() => unknown, RegExp][] = [
      [() => T.nf4Dequantize(codes.to('i64'), absmax, 64, 640, 'f32'), /codes: expected u8/],
      [() => T.nf4Dequantize(codes, absmax.to('f64'), 64, 640, 'f32'), /absmax: expected f32/],
      [() => T.nf4Dequantize(codes, absmax, 64, 641, 'f32'), /absmax: expected 11 block scales/],
      [() => T.nf4Dequantize(codes, absmax.narrow(0, 0, 9).contiguous(), 64, 576, 'f32'), /codes: expected 288 bytes/],
      [() => T.nf4Dequantize(codes, absmax, 63, 640, 'f32'), /blockSize must be a positive even integer/],
      [() => T.nf4Dequantize(codes, absmax, 0, 640, 'f32'), /blockSize must be a positive even integer/],
      [() => T.nf4Dequantize(codes, absmax, 64, 0, 'f32'), /n \(number of elements\) must be positive/],
      [() => T.nf4Dequantize(codes, absmax, 64, 640, 'i64'), /dtype: expected f32, bf16, f16 or f64/],
      [() => T.nf4Dequantize(codes, absmax, 64, 640, 'f8' as T.DType), /unknown dtype/],
      [
        () => T.nf4Dequantize(T.zeros([640], { dtype: 'u8' }).view([320, 2]).select(1, 0), absmax, 64, 640, 'f32'),
        /codes: expected a contiguous tensor/,
      ],
      [
        () => T.nf4Dequantize(codes, T.ones([20]).view([10, 2]).select(1, 0), 64, 640, 'f32'),
        /absmax: expected a contiguous tensor/,
      ],
      [() => T.nf4Dequantize(codes, absmax, 64.5, 640, 'f32'), /expected an integer/],
    ];
    for (const [fn, re] of bad) {
      assert.throws(fn, (e: Error) => {
        assert.match(e.message, /^medlora engine: nf4Dequantize: /);
        assert.match(e.message, re);
        return true;
      });
    }
    // a disposed tensor
    const c2 = codes.clone();
    c2.dispose();
    assert.throws(() => T.nf4Dequantize(c2, absmax, 64, 640, 'f32'), /disposed/);
    // and the good call works
    assert.equal(T.nf4Dequantize(codes, absmax, 64, 640, 'f32').numel, 640);
  });
});

// f32 <-> bf16 / f16 conversions against bit patterns worked out by hand from the IEEE-754 layouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bf16BitsToF32,
  bytesToNumbers,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  f32ToBf16,
  bf16ToF32,
  typedBytes,
} from '../../src/io/dtype.js';

test('f32 -> bf16 rounds to nearest, ties to even', () => {
  assert.equal(f32ToBf16Bits(1), 0x3f80); // 1.0 = 0x3F800000: upper half
  assert.equal(f32ToBf16Bits(-2), 0xc000); // -2.0 = 0xC0000000
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // 0x3F808000: exactly half way, keep even 0x3F80
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82); // 0x3F818000: half way from odd 0x3F81, go to even 0x3F82
  assert.equal(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -23), 0x3f81); // 0x3F808001: just above half, round up
  assert.equal(f32ToBf16Bits(1 + 2 ** -8 - 2 ** -23), 0x3f80); // 0x3F807FFF: just below half, round down
  assert.equal(f32ToBf16Bits(3.4028234663852886e38), 0x7f80); // max f32 0x7F7FFFFF rounds up to +inf
  assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  assert.equal(f32ToBf16Bits(NaN), 0x7fc0);
  assert.equal(f32ToBf16Bits(-0), 0x8000);
});

test('bf16 -> f32 is exact', () => {
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0x4049), 3.140625); // 0x40490000 = 2 * (1 + 0x49/128) = 3.140625
  assert.equal(bf16BitsToF32(0xff80), -Infinity);
  assert.ok(Number.isNaN(bf16BitsToF32(0x7fc0)));
  // every bf16 value survives bf16 -> f32 -> bf16
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToBf16(bf16ToF32(all));
  let bad = 0;
  for (let i = 0; i < 65536; i++) {
    const isNaN = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
    if (!isNaN && back[i] !== i) bad++;
  }
  assert.equal(bad, 0);
});

test('f32 -> f16 handles normals, ties, overflow, subnormals', () => {
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(-2), 0xc000);
  assert.equal(f32ToF16Bits(65504), 0x7bff); // largest half
  assert.equal(f32ToF16Bits(65520), 0x7c00); // half way between 65504 (odd mantissa) and 65536 -> even = inf
  assert.equal(f32ToF16Bits(65519), 0x7bff);
  assert.equal(f32ToF16Bits(2 ** -14), 0x0400); // smallest normal
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // half of it: tie to even 0
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // 1.5 ulp: tie between 1 and 2 -> 2
  assert.equal(f32ToF16Bits(1 / 3), 0x3555); // 0.333251953125 = (1 + 0x155/1024) / 4; remainder below half
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // half way above 1.0: even 0x3C00
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // half way from odd 0x3C01 -> 0x3C02
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(f32ToF16Bits(Infinity), 0x7c00);
  assert.equal(f32ToF16Bits(NaN) & 0x7e00, 0x7e00);
});

test('f16 -> f32 decodes normals, subnormals and specials', () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  // every finite half survives f16 -> f32 -> f16
  let bad = 0;
  for (let h = 0; h < 65536; h++) {
    if ((h & 0x7c00) === 0x7c00) continue;
    if (f32ToF16Bits(f16BitsToF32(h)) !== h) bad++;
  }
  assert.equal(bad, 0);
});

test('bytesToNumbers decodes each dtype from little-endian bytes', () => {
  assert.deepEqual([...bytesToNumbers('I32', typedBytes(new Int32Array([1, -2, 3])))], [1, -2, 3]);
  assert.deepEqual([...bytesToNumbers('BF16', new Uint8Array([0x80, 0x3f, 0x00, 0xc0]))], [1, -2]);
  assert.deepEqual([...bytesToNumbers('F16', new Uint8Array([0x00, 0x3c]))], [1]);
  assert.deepEqual([...bytesToNumbers('I8', new Uint8Array([0xff, 1]))], [-1, 1]);
  // unaligned views are copied, not misread
  const buf = new Uint8Array(9);
  buf.set(typedBytes(new Float64Array([2.5])), 1);
  assert.deepEqual([...bytesToNumbers('F64', buf.subarray(1))], [2.5]);
});

// Bad calls from JS must throw clear one-line errors that name the op and the argument shapes (never crash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';

/** Assert fn throws an engine error whose message matches every pattern; returns the message. */
function engineThrows(fn: () => unknown, ...patterns: RegExp[]): string {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, 'expected an Error to be thrown');
  const msg = caught.message;
  console.log(`  ${msg}`);
  assert.equal((caught as { engine?: boolean }).engine, true, 'error should carry engine: true');
  assert.ok(!msg.includes('\n'), 'engine errors are one line');
  for (const p of patterns) assert.match(msg, p);
  return msg;
}

test('matmul shape mismatch names the op and both shapes', () => {
  engineThrows(() => T.zeros([2, 3]).matmul(T.zeros([4, 5])), /^medlora engine: matmul: /, /f32\[2,3\]/, /f32\[4,5\]/);
});

test('linear with mismatched in-features', () => {
  engineThrows(
    () => T.linear(T.zeros([2, 3]), T.zeros([4, 5])),
    /^medlora engine: linear: /,
    /in-features 5/,
    /f32\[2,3\], f32\[4,5\]/,
  );
});

test('embedding with float ids is a dtype error', () => {
  engineThrows(
    () => T.embedding(T.zeros([10, 4]), T.tensor([1, 2])),
    /^medlora engine: embedding: ids must be an integer/,
    /f32\[2\]/,
  );
});

test('use after dispose', () => {
  const a = T.ones([2]);
  a.dispose();
  a.dispose(); // twice is fine
  assert.equal(a.disposed, true);
  engineThrows(() => a.add(1), /^medlora engine: add: .*tensor was disposed/);
  engineThrows(() => a.toArray(), /^medlora engine: toArray: .*disposed/);
  engineThrows(() => T.cat([T.ones([1]), a]), /^medlora engine: cat: .*element 1 was disposed/);
});

test('0-d index out of range (select past the end)', () => {
  engineThrows(() => T.zeros([3, 2]).select(0, 3), /^medlora engine: select: .*index 3 out of range/, /f32\[3,2\]/);
  engineThrows(() => T.zeros([2]).size(4), /size: dimension 4 out of range/);
});

test('cross-entropy targets out of range', () => {
  engineThrows(
    () => T.crossEntropy(T.zeros([2, 3]), T.tensor([0, 7], { dtype: 'i64' })),
    /^medlora engine: crossEntropy: /,
    /out of bounds/,
    /f32\[2,3\], i64\[2\]/,
  );
  engineThrows(
    () => T.crossEntropy(T.zeros([2, 3]), T.tensor([0, 1], { dtype: 'i32' })),
    /crossEntropy: targets must be a 1-D i64 tensor of length 2/,
  );
});

test('fromBytes with a wrong byte count', () => {
  engineThrows(
    () => T.fromBytes(new Uint8Array(7), 'f32', [2]),
    /^medlora engine: fromBytes: got 7 bytes but f32\[2\] needs 8/,
  );
});

test('other bad arguments', () => {
  engineThrows(
    () => T.tensor([1, 2, 3], { shape: [2, 2] }),
    /fromTyped: data has 3 elements but shape \[2,2\] needs 4/,
  );
  engineThrows(() => T.zeros([2], { dtype: 'q4' as T.DType }), /zeros: unknown dtype 'q4'/);
  engineThrows(
    () => T.tensor([[1, 2], [3]]),
    /^medlora engine: tensor: ragged nested array \(expected length 2 at depth 1\)/,
  );
  engineThrows(() => T.tensor([1.5], { dtype: 'i64' }), /^medlora engine: tensor: i64 data must be integers, got 1\.5/);
  engineThrows(() => T.where(T.ones([2]), 1, 0), /where: condition must be a bool tensor/);
  engineThrows(() => T.ones([2]).reshape([3]), /reshape: .*shape '\[3\]' is invalid/);
  engineThrows(() => T.ones([3]).backward(), /backward: tensor does not require grad/);
  engineThrows(
    () => T.ones([3]).requiresGrad_(true).mul(2).backward(),
    /backward: backward\(\) without a gradient needs a single-element tensor/,
  );
  engineThrows(() => T.ones([2], { dtype: 'i64' }).requiresGrad_(true), /requiresGrad_: only floating-point tensors/);
  engineThrows(
    () => new T.AdamW([T.ones([2])]),
    /adamwNew: parameter 0 \(f32\[2\]\) must be a leaf tensor that requires grad/,
  );
  engineThrows(() => T.ones([2]).item(), /item: item\(\) needs exactly one element/);
  engineThrows(() => T.ones([2]).to('cuda'), /^medlora engine: to: /);
  engineThrows(
    () => T.fromFile('/nonexistent/file.bin', 0, 'f32', [1]),
    /fromFile: cannot open \/nonexistent\/file\.bin/,
  );
  engineThrows(() => T.zeros([2]).dropout(1.5), /dropout: dropout probability must be in \[0, 1\]/);
  engineThrows(() => T.zeros([2]).slice(0, 0, 2, 0), /slice: slice step must be >= 1/);
});

test('an exception inside a checkpoint segment surfaces as a JS error in forward and in backward', () => {
  const x = T.ones([2]).requiresGrad_(true);
  engineThrows(
    () =>
      T.checkpoint(() => {
        throw new Error('segment bug');
      }, [x]),
    /checkpoint: checkpoint segment threw: segment bug/,
  );
  let calls = 0;
  const [y] = T.checkpoint(
    (u) => {
      if (++calls > 1) throw new Error('fails on recompute');
      return u.mul(2);
    },
    [x],
  );
  engineThrows(() => y!.sum().backward(), /backward: checkpoint segment threw: fails on recompute/);
});

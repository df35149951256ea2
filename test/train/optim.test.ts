// Optimizers: the 8-bit code books and block quantization, the 8-bit AdamW against full AdamW on a small least-squares
// problem, the memory it saves, and exact state round trips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, noGrad, randn, scope, tensor, zeros, type Tensor } from '../../src/tensor/index.js';
import { assertClose } from '../../src/util/close.js';
import {
  BLOCK,
  createOptimizer,
  dequantizeBlockwise,
  dynamicCodebook,
  quantizeBlockwise,
} from '../../src/train/optim.js';

test('dynamic code books: sorted, within [-1,1] / [0,1], contain 0 and 1, at most 256 codes', () => {
  for (const signed of [true, false]) {
    const b = dynamicCodebook(signed);
    assert.ok(b.length <= 256);
    for (let i = 1; i < b.length; i++) assert.ok(b[i]! > b[i - 1]!, 'strictly increasing');
    assert.equal(b[b.length - 1], 1);
    assert.ok(b.includes(0));
    assert.equal(b[0], signed ? -1 : 0);
  }
});

test('block quantization: each value decodes to the nearest code of x/absmax, times absmax', () => {
  manualSeed(1);
  const book = dynamicCodebook(true);
  const x = randn([600]); // 3 blocks, the last one partial
  const bookT = tensor(book);
  const mids = tensor(Float32Array.from(book.slice(1), (v, i) => (v + book[i]!) / 2));
  const q = quantizeBlockwise(x, bookT, mids);
  assert.deepEqual(q.codes.shape, [3 * BLOCK]);
  const back = dequantizeBlockwise(q, bookT, [600]).toFloat32Array();
  const xs = x.toFloat32Array();
  // independent: nearest code by linear scan, per block absmax
  const want = new Float32Array(600);
  for (let b = 0; b < 3; b++) {
    const blk = xs.subarray(b * BLOCK, Math.min(600, (b + 1) * BLOCK));
    const am = Math.max(...Array.from(blk, Math.abs));
    blk.forEach((v, i) => {
      let best = 0;
      for (let j = 1; j < book.length; j++) if (Math.abs(book[j]! - v / am) < Math.abs(book[best]! - v / am)) best = j;
      want[b * BLOCK + i] = book[best]! * am;
    });
  }
  assertClose(back, want, { atol: 1e-6, label: 'dequantized vs nearest code' });
  // absmax itself is exact (code 1.0)
  assertClose(
    [Math.max(...Array.from(back.subarray(0, BLOCK), Math.abs))],
    [Math.max(...Array.from(xs.subarray(0, BLOCK), Math.abs))],
    { atol: 1e-7, label: 'absmax' },
  );
});

function lsqRun(
  name: 'adamw_torch' | 'adamw_8bit',
  steps: number,
): { w: Float32Array; losses: number[]; bytes: { actual: number; fp32: number } } {
  manualSeed(7);
  const A = randn([200, 40]); // overdetermined: a unique minimiser both runs approach
  const wTrue = randn([40, 1]);
  const y = A.matmul(wTrue);
  const w = zeros([40, 1]).requiresGrad_(true);
  const opt = createOptimizer([['w', w]], { name, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    scope(() => {
      const loss = A.matmul(w).sub(y).square().mean();
      losses.push(loss.item());
      loss.backward();
    });
    opt.step(0.02);
    opt.zeroGrad();
  }
  const out = { w: w.toFloat32Array(), losses, bytes: opt.stateBytes() };
  opt.dispose();
  return out;
}

test('8-bit AdamW tracks torch AdamW on a least-squares problem (parameters and loss curve)', () => {
  const full = lsqRun('adamw_torch', 100),
    q8 = lsqRun('adamw_8bit', 100);
  console.log(
    `  loss start ${full.losses[0]!.toFixed(3)}; after 100 steps: full ${full.losses.at(-1)!.toExponential(3)}, 8-bit ${q8.losses.at(-1)!.toExponential(3)}`,
  );
  // both must actually optimise
  assert.ok(full.losses.at(-1)! < full.losses[0]! * 0.05 && q8.losses.at(-1)! < q8.losses[0]! * 0.05);
  // parameters close to the full-precision run: the L2 distance between the two is small next to the distance travelled
  // (both start at 0)
  const norm = (a: ArrayLike<number>): number => Math.sqrt(Array.from(a).reduce((x, v) => x + v * v, 0));
  const drift = norm(Array.from(q8.w, (v, i) => v - full.w[i]!)) / norm(full.w);
  console.log(`  ||w_8bit - w_full|| / ||w_full|| = ${drift.toExponential(3)}`);
  assert.ok(drift < 0.05, `drift ${drift}`);
  // loss curves agree to a few percent over the whole run
  // loss curves agree to within 1% of the starting loss over the whole run
  const dev = Math.max(...full.losses.map((l, i) => Math.abs(q8.losses[i]! - l))) / full.losses[0]!;
  console.log(`  max loss-curve difference / initial loss ${dev.toExponential(3)}`);
  assert.ok(dev < 0.01, `loss-curve deviation ${dev}`);
  // 40 params: f32 state 2*4*40 = 320 bytes; 8-bit: 2 * (1 block * 256 codes + 1 absmax * 4) = 520 (a tiny tensor
  // pays for its padded block; large ones approach 2 bytes + 8/256 per element)
  assert.equal(full.bytes.fp32, 320);
  assert.equal(q8.bytes.actual, 520);
  console.log(`  optimizer state: f32 ${q8.bytes.fp32} B, 8-bit ${q8.bytes.actual} B`);
});

test('optimizer state save/load round-trips exactly (both kinds)', () => {
  for (const name of ['adamw_torch', 'adamw_8bit'] as const) {
    manualSeed(3);
    const mk = (): Tensor => randn([10, 7]).requiresGrad_(true);
    const p1 = mk();
    const p2 = noGrad(() => p1.clone()).requiresGrad_(true);
    const g = randn([10, 7]);
    const o1 = createOptimizer([['p', p1]], { name, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 });
    p1.grad = g.clone();
    o1.step(0.01);
    o1.zeroGrad();
    const o2 = createOptimizer([['p', p2]], { name, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 });
    noGrad(() => p2.copy_(p1));
    o2.loadState(o1.saveState());
    p1.grad = g.mul(2);
    o1.step(0.01);
    p2.grad = g.mul(2);
    o2.step(0.01);
    assert.deepEqual(
      Array.from(p2.toFloat32Array()),
      Array.from(p1.toFloat32Array()),
      `${name}: resumed step equals the uninterrupted one`,
    );
  }
});

test('no trainable parameters is a clear error', () => {
  assert.throws(
    () => createOptimizer([], { name: 'adamw_torch', betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 }),
    /no trainable parameters/,
  );
});

test('8-bit state memory for a LoRA-sized tensor: 2 B + 8 B/256 per element vs 8 B', () => {
  const p = zeros([8, 4096]).requiresGrad_(true);
  const o = createOptimizer([['lora_A', p]], {
    name: 'paged_adamw_8bit',
    betas: [0.9, 0.999],
    eps: 1e-8,
    weightDecay: 0,
  });
  // 32768 elements = 128 blocks: 2 * (32768 + 128 * 4) = 66560 bytes; f32: 8 * 32768 = 262144
  assert.deepEqual(o.stateBytes(), { actual: 66560, fp32: 262144 });
  o.dispose();
});

// The engine's CPU dropout (native/src/dropout.cc: a counter-based mask, seed drawn from the CPU generator): keep rate
// and scale against the Bernoulli(1-p) definition, backward = the same mask (checked against the forward's own
// zeros), determinism under manualSeed / thread count / dtype, independence of neighbouring elements.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { N } from '../../src/tensor/native.js';

/** binomial check: |observed - p| within 5 standard deviations of a fraction over n draws */
function within5Sigma(observed: number, p: number, n: number): { ok: boolean; sigmas: number } {
  const sigmas = Math.abs(observed - p) / Math.sqrt((p * (1 - p)) / n);
  return { ok: sigmas < 5, sigmas };
}

test('dropout keeps each element with probability 1-p, kept values scaled by 1/(1-p)', () => {
  const n = 1_000_000;
  for (const p of [0.05, 0.5]) {
    T.manualSeed(1);
    const y = T.scope(() => T.ones([n]).dropout(p, true).toFloat32Array());
    let dropped = 0;
    const scale = Math.fround(1 / (1 - p));
    for (const v of y) {
      if (v === 0) dropped++;
      else assert.equal(v, scale);
    }
    const c = within5Sigma(dropped / n, p, n);
    console.log(`p ${p}: dropped ${dropped / n} (${c.sigmas.toFixed(2)} sigma from p)`);
    assert.ok(c.ok, `dropped fraction ${dropped / n} vs p ${p}`);
    // the checker fails a wrong rate: the same draws are > 5 sigma away from p + 0.01
    assert.ok(!within5Sigma(dropped / n, p + 0.01, n).ok, 'the rate check must reject p + 0.01');
  }
});

test('neighbouring elements are independent (two elements share one hash: their joint drop rate is p^2)', () => {
  const n = 1_000_000;
  T.manualSeed(2);
  const y = T.scope(() => T.ones([n]).dropout(0.5, true).toFloat32Array());
  let both = 0,
    pairs = 0;
  for (let i = 0; i + 1 < n; i += 2) {
    pairs++;
    if (y[i] === 0 && y[i + 1] === 0) both++;
  }
  let across = 0;
  for (let i = 1; i + 1 < n; i += 2) if (y[i] === 0 && y[i + 1] === 0) across++;
  const a = within5Sigma(both / pairs, 0.25, pairs);
  const b = within5Sigma(across / (pairs - 1), 0.25, pairs - 1);
  console.log(
    `joint drop rate within pairs ${both / pairs} (${a.sigmas.toFixed(2)} sigma), across ${across / (pairs - 1)}`,
  );
  assert.ok(a.ok && b.ok);
});

test('backward applies the forward mask: dx = dy * mask / (1-p), for f32, f64 and bf16', () => {
  for (const dtype of ['f32', 'f64', 'bf16'] as const) {
    T.scope(() => {
      T.manualSeed(3);
      const x = T.rand([64, 33], { dtype }).add(0.5).requiresGrad_(true); // no zero inputs: y == 0 <=> dropped
      const g = T.randn([64, 33], { dtype });
      const y = x.dropout(0.3, true);
      y.mul(g).sum().backward();
      const ys = y.float().toFloat32Array(),
        gs = g.float().toFloat32Array(),
        dx = x.grad!.float().toFloat32Array();
      const s = 1 / 0.7;
      let maxDiff = 0,
        dropped = 0;
      for (let i = 0; i < ys.length; i++) {
        const want = ys[i] === 0 ? 0 : gs[i]! * s;
        if (ys[i] === 0) dropped++;
        maxDiff = Math.max(maxDiff, Math.abs(dx[i]! - want));
      }
      const tol = dtype === 'bf16' ? 0.02 * 4 : 1e-5;
      console.log(`${dtype}: ${dropped} of ${ys.length} dropped, max |dx - dy*mask*scale| ${maxDiff}`);
      assert.ok(dropped > 0 && dropped < ys.length);
      assert.ok(maxDiff <= tol, `${dtype}: ${maxDiff}`);
    });
  }
});

test('the mask depends only on the seed and the element index (not the thread count, dtype or layout)', () => {
  const mask = (f: () => T.Tensor): number[] =>
    T.scope(() => Array.from(f().float().toFloat32Array(), (v) => (v === 0 ? 0 : 1)));
  const x = T.keep(T.ones([37, 1291]));
  try {
    T.manualSeed(4);
    const ref = mask(() => x.dropout(0.2));
    T.manualSeed(4);
    assert.deepEqual(
      mask(() => x.dropout(0.2)),
      ref,
      'same seed, same mask',
    );
    assert.notDeepEqual(
      mask(() => x.dropout(0.2)),
      ref,
      'the next call draws a new mask',
    );
    const threads = T.getNumThreads();
    T.setNumThreads(threads === 1 ? 2 : 1);
    try {
      T.manualSeed(4);
      assert.deepEqual(
        mask(() => x.dropout(0.2)),
        ref,
        'another thread count',
      );
    } finally {
      T.setNumThreads(threads);
    }
    T.manualSeed(4);
    assert.deepEqual(
      mask(() => x.to('bf16').dropout(0.2)),
      ref,
      'bf16',
    );
    // a transposed (non-contiguous) input is masked in its logical (row-major) order
    const xt = T.keep(T.ones([1291, 37]).transpose(0, 1));
    T.manualSeed(4);
    assert.deepEqual(
      mask(() => xt.dropout(0.2)),
      ref,
      'non-contiguous input',
    );
    xt.dispose();
  } finally {
    x.dispose();
  }
});

test('train=false and p=0 return the input; p=1 drops everything', () => {
  T.scope(() => {
    const x = T.randn([5, 3]);
    assert.deepEqual(x.dropout(0.5, false).toFloat32Array(), x.toFloat32Array());
    assert.deepEqual(x.dropout(0, true).toFloat32Array(), x.toFloat32Array());
    assert.ok(
      x
        .dropout(1, true)
        .toFloat32Array()
        .every((v) => v === 0),
    );
  });
});

test('the addon is built with OpenMP: its own parallel kernels (this dropout) use every engine thread', () => {
  // ATen's at::parallel_for is a header template; compiled without -fopenmp (native/build.mjs) it silently runs on the
  // calling thread alone, which left this dropout serial while MKL's matmuls used both cores (perf: ~6% of a step's
  // wall time, docs/PERFORMANCE.md). parallelProbe(n) counts the distinct threads one parallel_for of n items ran on.
  const before = T.getNumThreads();
  try {
    T.setNumThreads(2);
    const seen = N.parallelProbe!(64) as number;
    console.log(`parallel_for over 64 items with 2 engine threads ran on ${seen} thread(s)`);
    assert.equal(seen, 2, 'a parallel_for compiled into the addon must run on 2 threads when the engine has 2');
    T.setNumThreads(1);
    assert.equal(N.parallelProbe!(64), 1, 'and on 1 with 1 (the probe itself can tell them apart)');
  } finally {
    T.setNumThreads(before);
  }
});

// AdamW against a hand-written reference of torch.optim.AdamW (single-tensor path), against per-step values derived
// by hand for one parameter, state save/restore, and clipGradNorm against hand arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose } from '../../src/util/close.js';
import * as T from '../../src/tensor/index.js';

/** torch/optim/adamw.py _single_tensor_adamw, written out in plain JS doubles. */
class RefAdamW {
  m: Float64Array;
  v: Float64Array;
  step = 0;
  constructor(
    public p: Float64Array,
    public b1 = 0.9,
    public b2 = 0.999,
    public eps = 1e-8,
    public wd = 0.01,
  ) {
    this.m = new Float64Array(p.length);
    this.v = new Float64Array(p.length);
  }
  update(g: Float64Array, lr: number): void {
    this.step++;
    const bc1 = 1 - this.b1 ** this.step,
      bc2 = 1 - this.b2 ** this.step;
    for (let i = 0; i < this.p.length; i++) {
      this.p[i] = this.p[i]! * (1 - lr * this.wd);
      this.m[i] = this.m[i]! + (g[i]! - this.m[i]!) * (1 - this.b1); // lerp
      this.v[i] = this.v[i]! * this.b2 + (1 - this.b2) * g[i]! * g[i]!;
      const denom = Math.sqrt(this.v[i]!) / Math.sqrt(bc2) + this.eps;
      this.p[i] = this.p[i]! - (lr / bc1) * (this.m[i]! / denom);
    }
  }
}

function pseudo(n: number, seed: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sin(seed * 12.9898 + i * 78.233) * 2;
  return out;
}

test('AdamW matches a reference of torch AdamW over several steps (f64)', () => {
  T.scope(() => {
    const init = pseudo(6, 1);
    const p = T.tensor(init, { dtype: 'f64', shape: [2, 3] }).requiresGrad_(true);
    const ref = new RefAdamW(Float64Array.from(init), 0.8, 0.95, 1e-6, 0.1);
    const opt = new T.AdamW([p], { betas: [0.8, 0.95], eps: 1e-6, weightDecay: 0.1 });
    const lrs = [1e-2, 5e-2, 2e-2, 1e-1, 3e-3];
    lrs.forEach((lr, s) => {
      const g = pseudo(6, s + 10);
      p.grad = T.tensor(g, { dtype: 'f64', shape: [2, 3] });
      opt.step(lr);
      ref.update(g, lr);
      assertClose(p.toArray() as Float64Array, ref.p, { atol: 1e-12, label: `step ${s + 1}` });
    });
    assert.equal(opt.state().step, 5);
  });
});

test('AdamW per-step values by hand for one parameter', () => {
  T.scope(() => {
    // p = 1, g = 0.5 each step, lr 0.1, wd 0.01, betas (0.9, 0.999), eps 1e-8
    const p = T.tensor([1], { dtype: 'f64' }).requiresGrad_(true);
    const opt = new T.AdamW([p]);
    p.grad = T.tensor([0.5], { dtype: 'f64' });
    opt.step(0.1);
    // step 1: decay 1 * (1 - 0.1*0.01) = 0.999; m = 0.1*0.5 = 0.05; v = 0.001*0.25 = 0.00025;
    // m_hat = 0.05/0.1 = 0.5; sqrt(v)/sqrt(1-0.999) = sqrt(0.25) = 0.5; p = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8)
    const p1 = 0.999 - ((0.1 / 0.1) * 0.05) / (0.5 + 1e-8);
    assertClose(p.toArray() as Float64Array, [p1], { atol: 1e-14, label: 'step 1' });
    opt.step(0.1);
    // step 2: m = 0.9*0.05 + 0.1*0.5 = 0.095; v = 0.999*0.00025 + 0.001*0.25 = 0.00049975;
    // bias corrections 1-0.9^2 = 0.19 and 1-0.999^2 = 0.001999; v/0.001999 = 0.25 -> denom 0.5 + 1e-8
    const p2 = p1 * 0.999 - ((0.1 / 0.19) * 0.095) / (Math.sqrt(0.00049975) / Math.sqrt(0.001999) + 1e-8);
    assertClose(p.toArray() as Float64Array, [p2], { atol: 1e-14, label: 'step 2' });
    const st = opt.state();
    assertClose(st.expAvg[0]!.toArray() as Float64Array, [0.095], { atol: 1e-15, label: 'exp_avg' });
    assertClose(st.expAvgSq[0]!.toArray() as Float64Array, [0.00049975], { atol: 1e-15, label: 'exp_avg_sq' });
  });
});

test('AdamW skips parameters without gradients and restores saved state exactly', () => {
  T.scope(() => {
    const a = T.tensor([1, 2], { dtype: 'f64' }).requiresGrad_(true);
    const b = T.tensor([3], { dtype: 'f64' }).requiresGrad_(true);
    const opt = new T.AdamW([a, b], { weightDecay: 0 });
    a.grad = T.tensor([0.1, -0.2], { dtype: 'f64' });
    opt.step(0.01);
    assert.deepEqual(b.toNumbers(), [3], 'no grad: untouched');
    assert.deepEqual(opt.state().paramSteps, [1, 0]);
    b.grad = T.tensor([1], { dtype: 'f64' });
    opt.step(0.01);
    // a copy of the run from here, restored into a fresh optimizer over cloned parameters
    const saved = opt.state();
    const a2 = a.detach().clone().requiresGrad_(true);
    const b2 = b.detach().clone().requiresGrad_(true);
    const opt2 = new T.AdamW([a2, b2], { weightDecay: 0 });
    opt2.loadState({
      ...saved,
      expAvg: saved.expAvg.map((t) => t.clone()),
      expAvgSq: saved.expAvgSq.map((t) => t.clone()),
    });
    for (const [p, q] of [
      [a, a2],
      [b, b2],
    ] as const) {
      q.grad = p.grad!.clone();
    }
    opt.step(0.02);
    opt2.step(0.02);
    assert.deepEqual(a2.toNumbers(), a.toNumbers());
    assert.deepEqual(b2.toNumbers(), b.toNumbers());
    assert.deepEqual(opt2.state().paramSteps, [3, 2]);
    assert.throws(
      () => opt2.loadState({ ...saved, expAvg: [T.zeros([5], { dtype: 'f64' }), saved.expAvg[1]!] }),
      /adamwLoadState: state entry 0 has shape f64\[5\]/,
    );
    opt.zeroGrad();
    assert.equal(a.grad, null);
  });
});

test('clipGradNorm returns the pre-clip norm and scales by max/(norm+1e-6) only when above max', () => {
  T.scope(() => {
    const a = T.zeros([2], { dtype: 'f64' }).requiresGrad_(true);
    const b = T.zeros([1], { dtype: 'f64' }).requiresGrad_(true);
    a.grad = T.tensor([3, 4], { dtype: 'f64' });
    b.grad = T.tensor([12], { dtype: 'f64' });
    // total = sqrt(9 + 16 + 144) = 13; coefficient 6.5 / (13 + 1e-6)
    const total = T.clipGradNorm([a, b], 6.5);
    assert.equal(total, 13);
    const c = 6.5 / (13 + 1e-6);
    assertClose(a.grad!.toArray() as Float64Array, [3 * c, 4 * c], { atol: 1e-12, label: 'clipped a' });
    assertClose(b.grad!.toArray() as Float64Array, [12 * c], { atol: 1e-12, label: 'clipped b' });
    // below the max: untouched (coefficient clamped to 1)
    const n2 = T.clipGradNorm([a, b], 100);
    assertClose([n2], [(6.5 * 13) / (13 + 1e-6)], { atol: 1e-9, label: 'second norm' });
    assertClose(b.grad!.toArray() as Float64Array, [12 * c], { atol: 1e-12, label: 'unclipped b' });
  });
});

// Activation checkpointing gives the same gradients as the plain graph: a 2-layer MLP and a LoRA-like block (frozen
// W, trainable A/B, dropout inside), with backward inline and on a worker thread (the path CUDA needs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertClose } from '../../src/util/close.js';
import * as T from '../../src/tensor/index.js';
import type { Tensor } from '../../src/tensor/index.js';

function grads(params: Tensor[]): Float32Array[] {
  return params.map((p) => p.grad!.toFloat32Array());
}

function compare(label: string, params: Tensor[], run: (ckpt: boolean) => Tensor): void {
  T.scope(() => {
    for (const p of params) p.zeroGrad();
    run(false).backward();
    const plain = grads(params);
    for (const p of params) p.zeroGrad();
    run(true).backward();
    const ck = grads(params);
    plain.forEach((g, i) => assertClose(ck[i]!, g, { atol: 1e-6, rtol: 1e-6, label: `${label} param ${i}` } as never));
  });
}

test('2-layer MLP: checkpoint == no checkpoint', () => {
  T.manualSeed(0);
  const w1 = T.randn([8, 16]).requiresGrad_(true);
  const w2 = T.randn([16, 3]).requiresGrad_(true);
  const x = T.randn([4, 8]);
  const block = (u: Tensor): Tensor => u.matmul(w1).tanh().matmul(w2);
  compare('mlp', [w1, w2], (ck) => (ck ? T.checkpoint(block, [x])[0]! : block(x)).pow(2).sum());
});

function loraSetup() {
  T.manualSeed(1);
  const dim = 12,
    r = 4;
  const layers = [0, 1, 2].map(() => ({
    W: T.randn([dim, dim]).mul(0.3), // frozen
    A: T.randn([r, dim]).mul(0.1).requiresGrad_(true),
    B: T.randn([dim, r]).mul(0.1).requiresGrad_(true),
  }));
  const x = T.randn([5, dim]); // e.g. frozen embeddings: no input requires grad
  const layer =
    (l: (typeof layers)[number]) =>
    (h: Tensor): Tensor =>
      T.linear(h, l.W)
        .add(T.linear(T.linear(h.dropout(0.2, true), l.A), l.B).mul(2))
        .silu();
  const run = (ck: boolean): Tensor => {
    T.manualSeed(42); // same dropout draws in both runs
    let h = x;
    for (const l of layers) h = ck ? T.checkpoint(layer(l), [h])[0]! : layer(l)(h);
    return h.square().mean();
  };
  return { params: layers.flatMap((l) => [l.A, l.B]), run };
}

test('LoRA-like blocks (frozen W, trainable A/B, dropout) with a no-grad input: checkpoint == no checkpoint', () => {
  const { params, run } = loraSetup();
  compare('lora', params, run);
});

test('the same with backward on a worker thread servicing JS callbacks', () => {
  const { params, run } = loraSetup();
  T.setEngineMode('worker');
  try {
    compare('lora worker', params, run);
  } finally {
    T.setEngineMode('auto');
  }
});

test('checkpoint frees segment intermediates and needs no graph under noGrad', () => {
  const w = T.randn([4, 4]).requiresGrad_(true);
  const x = T.randn([2, 4]);
  const live0 = T.liveTensorCount();
  T.scope(() => {
    const [y] = T.checkpoint((u) => u.matmul(w).relu().matmul(w), [x]);
    y!.sum().backward();
  });
  assert.ok(T.liveTensorCount() <= live0, 'no handles left behind by forward or recompute');
  const y = T.noGrad(() => T.checkpoint((u) => u.matmul(w), [x])[0]!);
  assert.equal(y.requiresGrad, false);
  assert.deepEqual(Array.from(y.toFloat32Array()), Array.from(x.matmul(w).toFloat32Array()));
});

test('worker mode: a segment that throws during recompute surfaces as an error (no deadlock)', () => {
  T.setEngineMode('worker');
  try {
    const x = T.ones([2]).requiresGrad_(true);
    let calls = 0;
    const [y] = T.checkpoint(
      (u) => {
        if (++calls > 1) throw new Error('recompute failed');
        return u.mul(3);
      },
      [x],
    );
    assert.throws(() => y!.sum().backward(), /medlora engine: backward: checkpoint segment threw: recompute failed/);
  } finally {
    T.setEngineMode('auto');
  }
});

test('nested checkpoints give the plain gradients, inline and on a worker thread', () => {
  T.manualSeed(3);
  const w1 = T.randn([6, 6]).mul(0.4).requiresGrad_(true);
  const w2 = T.randn([6, 6]).mul(0.4).requiresGrad_(true);
  const x = T.randn([3, 6]);
  const inner = (u: Tensor): Tensor => u.matmul(w2).sin();
  const outer =
    (ck: boolean) =>
    (u: Tensor): Tensor => {
      const hh = u.matmul(w1).tanh();
      return ck ? T.checkpoint(inner, [hh])[0]! : inner(hh);
    };
  const run = (ck: boolean): Tensor => (ck ? T.checkpoint(outer(true), [x])[0]! : outer(false)(x)).sum();
  compare('nested', [w1, w2], run);
  T.setEngineMode('worker');
  try {
    compare('nested worker', [w1, w2], run);
  } finally {
    T.setEngineMode('auto');
  }
});

test('noGrad / enableGrad scopes nest and restore the mode, also after a throw', () => {
  const w = T.ones([2]).requiresGrad_(true);
  assert.equal(T.isGradEnabled(), true);
  T.noGrad(() => {
    assert.equal(w.mul(2).requiresGrad, false);
    assert.equal(
      T.enableGrad(() => w.mul(2).requiresGrad),
      true,
    );
    assert.equal(T.isGradEnabled(), false);
  });
  assert.throws(
    () =>
      T.noGrad(() => {
        throw new Error('inside');
      }),
    /inside/,
  );
  assert.equal(T.isGradEnabled(), true);
});

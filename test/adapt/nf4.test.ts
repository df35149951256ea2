// NF4 / QLoRA tests: the level table re-derived from its definition, quantize -> dequantize against a brute-force
// nearest-level computation written here, packing by hand, error bounds, double quantization, memory (hand-counted
// bytes), Nf4Linear forward/backward (incl. inside gradient checkpointing), quantizeModel, LoRA training over NF4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { assertClose } from '../../src/util/close.js';
import { MedloraError } from '../../src/util/errors.js';
import { TinyConv1D, TinyLinear, TinyModel } from './tiny.js';
import { applyLora, loraModules, trainableParameterSummary } from '../../src/adapt/apply.js';
import { LoraLinear } from '../../src/adapt/lora.js';
import { mergeLora } from '../../src/adapt/merge.js';
import { dequantizeNf4, NF4_LEVELS, nf4Bytes, nf4Scales, quantizeNf4 } from '../../src/adapt/nf4.js';
import { Nf4Linear, quantizeModel } from '../../src/adapt/nf4-linear.js';

const f = (t: T.Tensor): number[] => Array.from(t.toFloat32Array());

// --- an independent standard-normal quantile: erf by its Taylor series (exact to double precision for |x| < 3),
// inverted by bisection
function erf(x: number): number {
  let sum = 0,
    term = x;
  for (let n = 0; n < 200; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const normCdf = (x: number): number => 0.5 * (1 + erf(x / Math.SQRT2));
function normPpf(p: number): number {
  let lo = -8,
    hi = 8;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (normCdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

test('NF4 levels = bitsandbytes create_normal_map(offset=0.9677083): 8 positive, 7 negative normal quantiles and 0, scaled to [-1, 1]', () => {
  const offset = 0.9677083;
  const lin = (a: number, b: number, n: number): number[] =>
    Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
  const pos = lin(offset, 0.5, 9).slice(0, 8).map(normPpf);
  const neg = lin(offset, 0.5, 8)
    .slice(0, 7)
    .map((p) => -normPpf(p));
  const all = [...pos, ...neg, 0].sort((a, b) => a - b);
  const max = Math.max(...all.map(Math.abs));
  assertClose(
    NF4_LEVELS,
    all.map((v) => v / max),
    { atol: 1e-6, label: 'NF4 levels vs normal quantiles' },
  );
  assert.equal(NF4_LEVELS.length, 16);
  assert.equal(NF4_LEVELS[7], 0);
});

/** The NF4 definition, brute force: per block of 64 (row-major), nearest level of w / absmax, times absmax. */
function nf4Reference(w: number[], bs = 64): number[] {
  const out: number[] = [];
  for (let s = 0; s < w.length; s += bs) {
    const block = w.slice(s, s + bs);
    const absmax = Math.max(...block.map(Math.abs));
    for (const v of block) {
      const x = absmax === 0 ? 0 : v / absmax;
      let best = 0;
      for (let i = 1; i < 16; i++) if (Math.abs(x - NF4_LEVELS[i]!) < Math.abs(x - NF4_LEVELS[best]!)) best = i;
      out.push(NF4_LEVELS[best]! * absmax);
    }
  }
  return out;
}

test('dequantize(quantize(w)) equals the NF4 definition (nearest level per 64-block, times absmax), odd sizes and bf16 too', () => {
  T.manualSeed(21);
  for (const [shape, dtype] of [
    [[7, 19], 'f32'],
    [[64, 96], 'f32'],
    [[33, 64], 'bf16'],
  ] as const) {
    const w = T.randn(shape).mul(0.05).to(dtype);
    const q = quantizeNf4(w);
    const deq = dequantizeNf4(q, 'f32');
    assert.deepEqual(deq.shape, shape);
    const ref = nf4Reference(f(w));
    assertClose(f(deq), ref, { atol: 1e-7, rtolMaxAbs: 1e-6, label: `NF4 ${dtype}[${shape.join(',')}]` });
    assert.equal(dequantizeNf4(q).dtype, dtype, 'default dequantization dtype is the original one');
  }
});

test('packing: two codes per byte, first element in the high nibble; an all-zero block stays zero', () => {
  // block 0: [2, -2, 0, 1, then zeros]: absmax 2 -> x = [1, -1, 0, 0.5, 0...]
  // codes: 1 -> 15, -1 -> 0, 0 -> 7, 0.5 -> nearest level 0.4407 (code 12; 0.5626 is 0.0626 away vs 0.0593)
  const vals = new Float32Array(128);
  vals.set([2, -2, 0, 1]);
  const q = quantizeNf4(T.tensor(vals));
  const bytes = Array.from(q.codes.toArray() as Uint8Array);
  assert.equal(bytes.length, 64);
  assert.deepEqual(bytes.slice(0, 3), [0xf0, 0x7c, 0x77]);
  assert.deepEqual(f(q.absmax!), [2, 0]);
  assert.ok(
    bytes.slice(32).every((b) => b === 0x77),
    'the all-zero second block is code 7 (= 0) everywhere',
  );
  assertClose(f(dequantizeNf4(q)).slice(0, 4), [2, -2, 0, 0.44070982933044434 * 2], { atol: 1e-7 });
});

test('round-trip error is at most half the widest level gap times the block absmax', () => {
  T.manualSeed(22);
  const w = T.randn([128, 64]);
  const deq = f(dequantizeNf4(quantizeNf4(w)));
  const wv = f(w);
  // widest gap: between -1.0 and -0.6961928 (the negative side has one level fewer) -> half of it 0.1519036
  const halfGap = Math.max(...NF4_LEVELS.slice(1).map((v, i) => v - NF4_LEVELS[i]!)) / 2;
  assertClose([halfGap], [(1 - 0.6961928009986877) / 2], { atol: 1e-12, label: 'half of the widest gap' });
  for (let b = 0; b < wv.length / 64; b++) {
    const blk = wv.slice(b * 64, b * 64 + 64);
    const absmax = Math.max(...blk.map(Math.abs));
    for (let i = 0; i < 64; i++) assert.ok(Math.abs(blk[i]! - deq[b * 64 + i]!) <= halfGap * absmax * (1 + 1e-6));
  }
  // and it is a 4-bit code: the mean relative error for Gaussian weights stays around 10% of the std
  const rms = Math.sqrt(wv.reduce((a, v, i) => a + (v - deq[i]!) ** 2, 0) / wv.length);
  assert.ok(rms < 0.12, `rms error ${rms} for N(0,1) weights`);
});

test('double quantization: scales within scale2/254 of the true absmax; memory in bytes counted by hand', () => {
  T.manualSeed(23);
  const w = T.randn([256, 512]); // 131072 weights -> 2048 blocks of 64 -> 8 second-level blocks of 256
  const q1 = quantizeNf4(w);
  const q2 = quantizeNf4(w, { doubleQuant: true });
  // plain: 131072 / 2 code bytes + 2048 F32 scales = 65536 + 8192
  assert.equal(nf4Bytes(q1), 65536 + 8192);
  // double: 65536 + 2048 i8 scales + 8 F32 second-level scales + one F32 offset = 65536 + 2048 + 32 + 4
  assert.equal(nf4Bytes(q2), 65536 + 2048 + 32 + 4);
  // vs 524288 bytes of F32: 7.1x smaller, 4.16 bits per weight (double quant: 4.127)
  assert.ok((131072 * 4) / nf4Bytes(q2) > 7.7);
  const exact = f(q1.absmax!);
  const approx = f(nf4Scales(q2));
  const s2 = f(q2.dq!.scale2);
  for (let i = 0; i < exact.length; i++)
    assert.ok(Math.abs(exact[i]! - approx[i]!) <= s2[Math.floor(i / 256)]! / 254 + 1e-6, `scale ${i}`);
  // same codes, slightly different scales: dequantized weights agree to within the scale error
  assertClose(f(dequantizeNf4(q2)), f(dequantizeNf4(q1)), { atol: Math.max(...s2) / 254 + 1e-6, label: 'dq vs plain' });
});

test('Nf4Linear forward = linear(x, dequantized W) and gradients flow to the input only', () => {
  T.manualSeed(24);
  const base = new TinyLinear(64, 32, { bias: true });
  const wDeq = dequantizeNf4(quantizeNf4(base.weight));
  const q = new Nf4Linear(base.weight, base.bias);
  const x = T.randn([3, 64]).requiresGrad_(true);
  const y = q.forward(x);
  assertClose(f(y), f(T.linear(x, wDeq, base.bias)), { atol: 1e-5, label: 'nf4 forward' });
  y.square().sum().backward();
  const xr = x.detach().requiresGrad_(true);
  T.linear(xr, wDeq, base.bias).square().sum().backward();
  assertClose(f(x.grad!), f(xr.grad!), { atol: 1e-4, label: 'grad wrt input (recomputed in backward)' });
  assert.equal(q.q.codes.requiresGrad, false);
  assert.equal(q.q.codes.grad, null);
});

test('QLoRA: LoRA over Nf4Linear layers trains; its gradients equal those over the dequantized weights (also under gradient checkpointing)', () => {
  T.manualSeed(25);
  const l1 = new TinyLinear(64, 64),
    l2 = new TinyLinear(64, 16);
  const d1 = dequantizeNf4(quantizeNf4(l1.weight)),
    d2 = dequantizeNf4(quantizeNf4(l2.weight));
  const make = (a: TinyLinear | Nf4Linear, b: TinyLinear | Nf4Linear): [LoraLinear, LoraLinear] => {
    T.manualSeed(26);
    return [
      new LoraLinear(a, { r: 4, loraAlpha: 8, init: false }),
      new LoraLinear(b, { r: 4, loraAlpha: 8, init: false }),
    ];
  };
  const [q1, q2] = make(new Nf4Linear(l1.weight, undefined), new Nf4Linear(l2.weight, undefined));
  const [r1, r2] = make(new TinyLinear(64, 64, { weight: d1 }), new TinyLinear(64, 16, { weight: d2 }));
  const x = T.randn([5, 64]);
  const run = (a: LoraLinear, b: LoraLinear, ckpt: boolean): void => {
    const fwd = (xi: T.Tensor): T.Tensor => b.forward(a.forward(xi).silu());
    const out = ckpt ? T.checkpoint(fwd, [x])[0]! : fwd(x);
    out.square().mean().backward();
  };
  run(q1, q2, false);
  run(r1, r2, false);
  for (const [a, b, n] of [
    [q1, r1, 'layer 1'],
    [q2, r2, 'layer 2'],
  ] as const) {
    assertClose(f(a.lora_A.weight.grad!), f(b.lora_A.weight.grad!), { rtolMaxAbs: 1e-4, label: `${n} lora_A grad` });
    assertClose(f(a.lora_B.weight.grad!), f(b.lora_B.weight.grad!), { rtolMaxAbs: 1e-4, label: `${n} lora_B grad` });
  }
  // gradient checkpointing around both layers (the NF4 recomputation then nests inside the outer one)
  const g1 = f(q1.lora_A.weight.grad!);
  for (const l of [q1, q2]) {
    l.lora_A.weight.zeroGrad();
    l.lora_B.weight.zeroGrad();
  }
  run(q1, q2, true);
  assertClose(f(q1.lora_A.weight.grad!), g1, { rtolMaxAbs: 1e-5, label: 'layer 1 lora_A grad under checkpointing' });
  // one AdamW step lowers the loss
  const params = [q1, q2].flatMap((l) => [l.lora_A.weight, l.lora_B.weight]);
  const loss = (): number => T.noGrad(() => q2.forward(q1.forward(x).silu()).square().mean().item());
  const before = loss();
  const opt = new T.AdamW(params, { weightDecay: 0 });
  for (let s = 0; s < 5; s++) {
    params.forEach((p) => p.zeroGrad());
    q2.forward(q1.forward(x).silu()).square().mean().backward();
    opt.step(1e-2);
  }
  assert.ok(loss() < before, `loss ${before} -> ${loss()}`);
});

test('quantizeModel: every linear except lm_head, Conv1D transposed, bytes reported, parameter counts logical', () => {
  T.manualSeed(27);
  const m = new TinyModel(64, 50, 2);
  const x = T.randn([2, 64]);
  // reference: the same model with every quantized weight replaced by its dequantized value
  const ref = new TinyModel(64, 50, 2);
  T.noGrad(() => {
    for (const [k, t] of ref.namedParameters()) t.copy_(m.namedParameters().find(([kk]) => kk === k)![1]);
  });
  const total = trainableParameterSummary(m).total;
  const report = quantizeModel(m, { doubleQuant: true });
  assert.deepEqual(report.layers, [
    'model.layers.0.self_attn.q_proj',
    'model.layers.0.self_attn.v_proj',
    'model.layers.0.mlp.c_fc',
    'model.layers.0.mlp.down_proj',
    'model.layers.1.self_attn.q_proj',
    'model.layers.1.self_attn.v_proj',
    'model.layers.1.mlp.c_fc',
    'model.layers.1.mlp.down_proj',
  ]);
  assert.deepEqual(report.skipped, [{ path: 'lm_head', reason: 'skipped by option' }]);
  // per layer: q, v 64x64, c_fc 64x128, down 128x64 -> 4096*2 + 8192*2 = 24576 weights; x2 layers = 49152 F32 weights
  assert.equal(report.bytesBefore, 49152 * 4);
  // per 4096-weight matrix: 2048 code bytes + 64 i8 scales + 1 F32 scale2 + F32 offset = 2120; per 8192: 4096 + 128 + 4 + 4
  assert.equal(report.bytesAfter, 2 * (2 * 2120 + 2 * 4232));
  assert.equal(trainableParameterSummary(m).total, total, 'a 4-bit weight still counts as in*out parameters');
  T.noGrad(() => {
    for (const path of report.layers) {
      const [a, b, c, d, e] = path.split('.');
      const ql = m.model.layers.at(Number(c)).child(d!)!.child(e!) as Nf4Linear;
      const rl = ref.model.layers.at(Number(c)).child(d!)!.child(e!)!;
      const w = rl.ownParameters().find(([n]) => n === 'weight')![1];
      const deq = ql.dequantize();
      w.copy_(rl instanceof TinyConv1D ? deq.transpose(0, 1) : deq);
      void a;
      void b;
    }
  });
  assertClose(f(m.forward(x)), f(ref.forward(x)), {
    atol: 1e-5,
    label: 'quantized model vs dequantized-weights model',
  });
  // LoRA on top; merging into 4-bit weights is refused with a clear message
  applyLora(m, { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: ['q_proj', 'c_fc'] });
  assert.equal(loraModules(m).length, 4);
  assert.throws(
    () => mergeLora(m),
    (e: Error) => e instanceof MedloraError && /4-bit quantized/.test(e.message),
  );
  assert.throws(() => quantizeModel(m), /before adding LoRA/);
});

test('no tensor handles leak from LoRA / Nf4Linear forward and backward without an enclosing scope', () => {
  T.manualSeed(28);
  // called directly (no model forward around them that would open a scope): every intermediate inside LoraLinear,
  // Nf4Linear and the checkpointed recomputation must be disposed by those modules themselves
  const l1 = new LoraLinear(new Nf4Linear(T.randn([64, 64]), undefined), {
    r: 2,
    loraAlpha: 4,
    loraDropout: 0.1,
    init: false,
  });
  const l2 = new LoraLinear(new TinyLinear(64, 8), { r: 2, loraAlpha: 4, init: false });
  l1.train();
  const params = [l1, l2].flatMap((l) => [l.lora_A.weight, l.lora_B.weight]);
  const step = (): void => {
    const x = T.randn([3, 64]).requiresGrad_(true);
    const h = l1.forward(x);
    const y = l2.forward(h);
    const sq = y.square();
    const loss = sq.mean();
    loss.backward();
    for (const t of [x, h, y, sq, loss]) t.dispose();
  };
  step();
  params.forEach((p) => p.zeroGrad());
  step(); // the gradients exist from here on
  const before = T.liveTensorCount();
  for (let i = 0; i < 5; i++) step();
  assert.equal(T.liveTensorCount(), before, 'live tensor handles stay constant across steps');
});

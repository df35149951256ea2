// LoRA wrapper, apply and merge on tiny hand-built models: init distribution, no-op at init, the forward formula
// checked against numbers written out by hand, perturbation, gradients, dropout, rsLoRA, bf16 base, counts, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { assertClose } from '../../src/util/close.js';
import { MedloraError } from '../../src/util/errors.js';
import { TinyConv1D, TinyLinear, TinyModel } from './tiny.js';
import { applyLora, enableFullFinetuning, loraModules, trainableParameterSummary } from '../../src/adapt/apply.js';
import { kaimingUniformA5, LoraLinear } from '../../src/adapt/lora.js';
import { mergeLora, unloadLora } from '../../src/adapt/merge.js';

const f = (t: T.Tensor): number[] => Array.from(t.toFloat32Array());

test('kaiming_uniform_(a=sqrt(5)) draws U(-1/sqrt(in), 1/sqrt(in))', () => {
  T.manualSeed(1);
  const fanIn = 64,
    bound = 1 / Math.sqrt(fanIn); // 0.125
  const v = f(kaimingUniformA5(64, fanIn));
  assert.ok(
    v.every((x) => Math.abs(x) <= bound),
    'all within the bound',
  );
  // 4096 uniform samples: the extremes come within 1% of the bound, mean ~ 0, variance ~ bound^2 / 3
  assert.ok(Math.max(...v) > 0.99 * bound && Math.min(...v) < -0.99 * bound);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
  assert.ok(Math.abs(mean) < 0.005, `mean ${mean}`);
  assertClose([variance], [(bound * bound) / 3], { rtolMaxAbs: 0.1, label: 'variance vs bound^2/3' });
});

test('forward = base(x) + B(A x) * alpha/r, checked by hand', () => {
  // W = [[1, 2], [3, 4]], bias 0; A = [[1, 1]] (r=1), B = [[2], [-1]]; alpha = 2 -> scaling 2
  const base = new TinyLinear(2, 2, {
    weight: T.tensor([
      [1, 2],
      [3, 4],
    ]),
  });
  const lora = new LoraLinear(base, { r: 1, loraAlpha: 2 });
  lora.setFactors(T.tensor([[1, 1]]), T.tensor([[2], [-1]]));
  // x = [1, -2]: Wx = [1 - 4, 3 - 8] = [-3, -5]; Ax = -1; B(Ax) = [-2, 1]; * 2 = [-4, 2] -> [-7, -3]
  assert.deepEqual(f(lora.forward(T.tensor([[1, -2]]))), [-7, -3]);
  assert.equal(lora.scaling, 2);
  // rsLoRA with r=4, alpha=8: 8 / sqrt(4) = 4 (plain LoRA: 8 / 4 = 2)
  assert.equal(new LoraLinear(new TinyLinear(2, 2), { r: 4, loraAlpha: 8, useRslora: true }).scaling, 4);
  assert.equal(new LoraLinear(new TinyLinear(2, 2), { r: 4, loraAlpha: 8 }).scaling, 2);
});

test('Conv1D base ([in, out] weight): A is [r, in], B is [out, r], forward is x W + b + delta', () => {
  T.manualSeed(2);
  const conv = new TinyConv1D(3, 5);
  const lora = new LoraLinear(conv, { r: 2, loraAlpha: 4, init: false });
  assert.deepEqual(lora.lora_A.weight.shape, [2, 3]);
  assert.deepEqual(lora.lora_B.weight.shape, [5, 2]);
  const x = T.randn([4, 3]);
  const want = x
    .matmul(conv.weight)
    .add(conv.bias)
    .add(x.matmul(lora.lora_A.weight.transpose(0, 1)).matmul(lora.lora_B.weight.transpose(0, 1)).mul(2));
  assertClose(f(lora.forward(x)), f(want), { atol: 1e-6, label: 'conv1d lora forward' });
});

test('a fresh LoRA model equals its base; perturbing lora_B changes it; merged equals unmerged', () => {
  T.manualSeed(3);
  const m = new TinyModel();
  const x = T.randn([2, 3, m.d]);
  const before = f(m.forward(x));
  const paths = applyLora(m, {
    r: 2,
    lora_alpha: 4,
    lora_dropout: 0,
    target_modules: ['q_proj', 'v_proj', 'c_fc', 'down_proj', 'lm_head'],
  });
  assert.equal(paths.length, 9);
  assert.deepEqual(f(m.forward(x)), before, 'B = 0 at init: exactly the base output');
  const [, first] = loraModules(m)[0]!;
  T.noGrad(() => first.lora_B.weight.add_(0.5));
  const after = f(m.forward(x));
  const diff = Math.max(...after.map((v, i) => Math.abs(v - before[i]!)));
  assert.ok(diff > 1e-3, `perturbing lora_B changed the output by ${diff}`);
  // give every adapter a non-zero B, then merge and compare
  for (const [, l] of loraModules(m)) T.noGrad(() => l.lora_B.weight.copy_(T.randn(l.lora_B.weight.shape).mul(0.3)));
  const unmerged = f(m.forward(x));
  const merged = mergeLora(m);
  assert.equal(merged.length, 9);
  assert.equal(loraModules(m).length, 0);
  assert.ok(
    m.lm_head instanceof TinyLinear && m.model.layers.at(0).mlp.c_fc instanceof TinyConv1D,
    'original structure back',
  );
  assertClose(f(m.forward(x)), unmerged, { atol: 1e-4, label: 'merged vs unmerged' });
  assert.ok(Math.max(...unmerged.map((v, i) => Math.abs(v - before[i]!))) > 1e-3, 'the adapters did something');
});

test('trainable parameters: only A and B, count = sum over wrapped layers of r * (in + out)', () => {
  T.manualSeed(4);
  const d = 8,
    V = 11,
    r = 4;
  const m = new TinyModel(d, V, 2);
  const totalBase = trainableParameterSummary(m).total;
  applyLora(m, { r, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'c_fc', 'lm_head'] });
  // per layer: q_proj (8 -> 8) and c_fc (8 -> 16); plus lm_head (8 -> 11) once
  const want = 2 * (r * (8 + 8) + r * (8 + 16)) + r * (8 + 11);
  const s = trainableParameterSummary(m);
  assert.equal(s.trainable, want);
  assert.equal(s.total, totalBase + want);
  assert.equal(
    s.line,
    `trainable params: ${want} || all params: ${(totalBase + want).toLocaleString('en-US')} || trainable%: ${((100 * want) / (totalBase + want)).toFixed(4)}`,
  );
  for (const [k, t] of m.namedParameters()) assert.equal(t.requiresGrad, /lora_[AB]\.weight$/.test(k), k);
  assert.ok(
    m.namedParameters().some(([k]) => k === 'model.layers.0.self_attn.q_proj.lora_A.weight'),
    'PEFT-style paths',
  );
  assert.ok(m.namedParameters().some(([k]) => k === 'model.layers.0.self_attn.q_proj.base_layer.weight'));
});

test('gradients flow to A and B only; base weights get none', () => {
  T.manualSeed(5);
  const m = new TinyModel();
  applyLora(m, { r: 2, lora_alpha: 2, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'], init: false });
  m.forward(T.randn([2, m.d]))
    .square()
    .mean()
    .backward();
  for (const [k, t] of m.namedParameters()) {
    const g = t.grad;
    if (/lora_[AB]/.test(k)) assert.ok(g && f(g).some((v) => v !== 0), `${k} has a gradient`);
    else assert.equal(g, null, `${k} is frozen`);
  }
});

test('dropout acts on the adapter input only while training', () => {
  T.manualSeed(6);
  const lora = new LoraLinear(new TinyLinear(16, 4), { r: 2, loraAlpha: 2, loraDropout: 0.5, init: false });
  const x = T.randn([3, 16]);
  const evalOut = f(lora.forward(x));
  const noDrop = new LoraLinear(new TinyLinear(16, 4, { weight: lora.base_layer.ownParameters()[0]![1] }), {
    r: 2,
    loraAlpha: 2,
  });
  noDrop.setFactors(lora.lora_A.weight, lora.lora_B.weight);
  assertClose(evalOut, f(noDrop.forward(x)), { atol: 1e-6, label: 'eval mode = no dropout' });
  lora.train();
  const trainOut = f(lora.forward(x));
  assert.ok(
    trainOut.some((v, i) => Math.abs(v - evalOut[i]!) > 1e-4),
    'training mode drops inputs',
  );
});

test('BF16 base: LoRA factors stay F32, output is BF16 = (base + F32 delta) rounded once, as PEFT does', () => {
  T.manualSeed(7);
  const base = new TinyLinear(8, 6, { dtype: 'bf16' });
  const lora = new LoraLinear(base, { r: 2, loraAlpha: 4, init: false });
  assert.equal(lora.lora_A.weight.dtype, 'f32');
  assert.equal(lora.lora_B.weight.dtype, 'f32');
  const x = T.randn([2, 8]).to('bf16');
  const y = lora.forward(x);
  assert.equal(y.dtype, 'bf16');
  // PEFT: result (bf16) + lora_B(lora_A(x.to(f32))) * scaling promotes to f32; result.to(torch_result_dtype) at the end
  const delta = T.linear(T.linear(x.float(), lora.lora_A.weight), lora.lora_B.weight).mul(2);
  assert.deepEqual(f(y), f(T.linear(x, base.weight).float().add(delta).to('bf16')));
});

test('full fine-tuning unfreezes every parameter; unload restores the base', () => {
  const m = new TinyModel();
  const n = enableFullFinetuning(m);
  assert.equal(n, m.namedParameters().length);
  const s = trainableParameterSummary(m);
  assert.equal(s.trainable, s.total);
  applyLora(m, {
    r: 1,
    lora_alpha: 1,
    lora_dropout: 0,
    target_modules: 'model\\.layers\\.\\d+\\.self_attn\\.(q|v)_proj',
  });
  assert.equal(loraModules(m).length, 4, 'regex target_modules matches whole paths');
  assert.throws(() => enableFullFinetuning(m), MedloraError);
  assert.deepEqual(unloadLora(m).length, 4);
  assert.equal(loraModules(m).length, 0);
  // PEFT's list matching also accepts dotted suffixes, and "all-linear" means every linear layer but the output one
  assert.deepEqual(applyLora(m, { r: 1, lora_alpha: 1, lora_dropout: 0, target_modules: ['mlp.down_proj'] }), [
    'model.layers.0.mlp.down_proj',
    'model.layers.1.mlp.down_proj',
  ]);
  unloadLora(m);
  assert.equal(applyLora(m, { r: 1, lora_alpha: 1, lora_dropout: 0, target_modules: 'all-linear' }).length, 8);
  assert.ok(!loraModules(m).some(([p]) => p === 'lm_head'));
});

test('errors: unknown targets name the available layers; bad r; double wrap', () => {
  const m = new TinyModel();
  assert.throws(
    () => applyLora(m, { r: 2, lora_alpha: 2, lora_dropout: 0, target_modules: ['q_proj', 'qkv_proj'] }),
    (e: Error) =>
      e instanceof MedloraError &&
      /\["qkv_proj"\] match no linear layer/.test(e.message) &&
      /q_proj, v_proj, c_fc, down_proj, lm_head/.test(e.message),
  );
  assert.throws(
    () => applyLora(m, { r: 2, lora_alpha: 2, lora_dropout: 0, target_modules: 'nothing\\.here' }),
    /matches no linear layer/,
  );
  assert.throws(() => new LoraLinear(new TinyLinear(2, 2), { r: 0, loraAlpha: 1 }), /r must be a positive integer/);
  assert.throws(() => new LoraLinear(new TinyLinear(2, 2), { r: 1, loraAlpha: 1, loraDropout: 1 }), /lora_dropout/);
  applyLora(m, { r: 2, lora_alpha: 2, lora_dropout: 0, target_modules: ['q_proj'] });
  assert.throws(
    () => applyLora(m, { r: 2, lora_alpha: 2, lora_dropout: 0, target_modules: ['q_proj'] }),
    /already has LoRA/,
  );
  const l = loraModules(m)[0]![1];
  assert.throws(
    () => l.setFactors(T.zeros([3, 8]), T.zeros([8, 2]), 'q'),
    /q: lora_A has shape \[3, 8\]; expected \[2, 8\]/,
  );
  assert.throws(
    () => l.setFactors(T.zeros([2, 8]), T.zeros([8, 3]), 'q'),
    /lora_B has shape \[8, 3\]; expected \[8, 2\]/,
  );
});

test('merging into a weight tied to another parameter leaves the other one untouched', () => {
  T.manualSeed(8);
  const m = new TinyModel();
  // tie lm_head's weight into a second registered parameter slot (as a tied embedding would be)
  const shared = m.lm_head.ownParameters()[0]![1];
  const copyBefore = f(shared);
  const holder = new TinyLinear(m.d, m.vocab, { weight: shared });
  (m as unknown as { module(n: string, x: unknown): void }).module('embed', holder);
  applyLora(m, { r: 2, lora_alpha: 2, lora_dropout: 0, target_modules: ['lm_head'], init: false });
  mergeLora(m);
  assert.deepEqual(f(shared), copyBefore, 'the tied tensor is unchanged');
  assert.notDeepEqual(f(m.lm_head.ownParameters()[0]![1]), copyBefore, 'lm_head got its own merged weight');
});

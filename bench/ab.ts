// `node dist/bench/ab.js`: before/after measurement of the step changes recorded in docs/PERFORMANCE.md, in ONE process
// on ONE model, alternating the variants step by step (ABAB...), so that a busy shared machine slows both alike. The
// "before" code is kept here verbatim (it is what src/adapt/lora.ts and src/model/loss.ts did before the change).
import { crossEntropy, linear, scope, type Tensor } from '../src/tensor/index.js';
import { LoraLinear } from '../src/adapt/lora.js';
import { IGNORE_INDEX } from '../src/model/loss.js';
import { defaultLoss, fullLogitsLoss, parseArgs, setupBench, timedStep, type LossFn, type StepTimes } from './train.js';

/** LoraLinear.forward before: scaling on the [.., out] delta, explicit f32 copy of the base output before the add. */
function loraForwardBefore(this: LoraLinear, x: Tensor): Tensor {
  return scope(() => {
    const y = this.base_layer.forward(x);
    let h = x.dtype === 'f32' ? x : x.to('f32');
    if (this.training && this.dropoutP > 0) h = h.dropout(this.dropoutP, true);
    const d = linear(linear(h, this.lora_A.weight), this.lora_B.weight).mul(this.scaling);
    return y.dtype === d.dtype ? y.add(d) : y.to(d.dtype).add(d).to(y.dtype);
  });
}

/** causalLmLoss before: logits at every position, shifted (copied) [B*(T-1), V]. */
const lossBefore: LossFn = (b) => {
  const logits = b.model.forward(b.ids);
  const labels = b.labels;
  const [B, T, V] = logits.shape as [number, number, number];
  const l = logits
    .narrow(1, 0, T - 1)
    .reshape([B * (T - 1), V])
    .float();
  const y = labels
    .narrow(1, 1, T - 1)
    .reshape([B * (T - 1)])
    .to('i64');
  const tokens = y.ne(IGNORE_INDEX).sum().item();
  return crossEntropy(l, y, { ignoreIndex: IGNORE_INDEX, reduction: 'sum' }).div(tokens);
};

interface Variant {
  name: string;
  lora: 'before' | 'after';
  loss: LossFn;
}

const a = parseArgs(process.argv.slice(2), {
  config: 'string',
  batch: 'number',
  seq: 'number',
  ckpt: 'number',
  steps: 'number',
  threads: 'number',
  json: 'flag',
  only: 'string',
});
const steps = (a.steps as number | undefined) ?? 4;
const variants: Variant[] = [
  { name: 'before', lora: 'before', loss: lossBefore },
  { name: 'after', lora: 'after', loss: defaultLoss },
];
if (a.only === 'lora') variants[0]!.loss = defaultLoss;
if (a.only === 'loss') variants[0]!.lora = 'after';
// --only head: today's LoRA and loss, all-position logits (causalLmLoss) vs logits at scored positions only
if (a.only === 'head') {
  variants[0]!.lora = 'after';
  variants[0]!.loss = fullLogitsLoss;
}
const afterForward = LoraLinear.prototype.forward;
const b = setupBench({
  config: (a.config as string | undefined) ?? 'smollm2-135m',
  batch: (a.batch as number | undefined) ?? 2,
  seq: (a.seq as number | undefined) ?? 400,
  dtype: 'bf16',
  ckpt: Boolean(a.ckpt ?? 0),
  steps,
  threads: (a.threads as number | undefined) ?? 2,
});
const results = new Map<string, StepTimes[]>(variants.map((v) => [v.name, []]));
// one warm-up step per variant, then `steps` rounds, alternating which goes first
for (let round = -1; round < steps; round++) {
  const order = round % 2 === 0 ? variants : [...variants].reverse();
  for (const v of order) {
    LoraLinear.prototype.forward = v.lora === 'before' ? loraForwardBefore : afterForward;
    const t = timedStep(b, v.loss);
    if (round >= 0) results.get(v.name)!.push(t);
  }
}
b.dispose();
const med = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor((s.length - 1) / 2)]!;
};
const summary = variants.map((v) => {
  const r = results.get(v.name)!;
  const f = (k: keyof StepTimes): { best: number; median: number } => ({
    best: Math.min(...r.map((t) => t[k])),
    median: med(r.map((t) => t[k])),
  });
  return {
    variant: v.name,
    step_s: f('step_s'),
    forward_s: f('forward_s'),
    backward_s: f('backward_s'),
    cpu_s: f('cpu_s'),
    all_step_s: r.map((t) => Math.round(t.step_s * 1000) / 1000),
  };
});
if (a.json) console.log(JSON.stringify(summary));
else {
  console.log(`A/B (${a.only ?? 'lora + loss'}), ${steps} alternating rounds; seconds best / median`);
  for (const s of summary) {
    console.log(
      `  ${s.variant.padEnd(7)} step ${s.step_s.best.toFixed(3)} / ${s.step_s.median.toFixed(3)}  fwd ${s.forward_s.best.toFixed(3)} / ${s.forward_s.median.toFixed(3)}  ` +
        `bwd ${s.backward_s.best.toFixed(3)} / ${s.backward_s.median.toFixed(3)}  cpu ${s.cpu_s.best.toFixed(2)} / ${s.cpu_s.median.toFixed(2)}  all: ${s.all_step_s.join(', ')}`,
    );
  }
}

// Prototype (not part of the product): measure demo training speed and learning curves with settings from env.
import { join } from 'node:path';
import { mkdirSync, rmSync } from 'node:fs';
import { buildDemoData } from '../src/demo/data.js';
import { buildDemoTokenizer, demoPrompt, DEMO_INSTRUCTION } from '../src/demo/tokenizer.js';
import { initModel } from '../src/model/init.js';
import { noGrad, scope, tensor, setNumThreads, getNumThreads } from '../src/tensor/index.js';
import { causalLmLoss } from '../src/model/loss.js';
import { enableFullFinetuning, applyLora } from '../src/adapt/apply.js';
import { Trainer } from '../src/train/trainer.js';
import { resolveConfig } from '../src/train/config.js';
import { encodeRecord } from '../src/data/encode.js';
import { renderTarget } from '../src/data/tasks.js';
import { taskConstraint } from '../src/generate/constraints/index.js';
import { parseOutput } from '../src/eval/parse.js';
import type { MedRecord } from '../src/data/schema.js';

const env = (k: string, d: number): number => (process.env[k] ? Number(process.env[k]) : d);
const out = '/tmp/demo-proto';
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
if (process.env.THREADS) setNumThreads(Number(process.env.THREADS));
console.log('threads', getNumThreads());
let t0 = Date.now();
const data = await buildDemoData(join(out, 'data'), { count: env('COUNT', 2000), seed: 1 });
console.log('data', data.train.length, data.validation.length, data.test.length, Date.now() - t0, 'ms');
t0 = Date.now();
const tok = buildDemoTokenizer(join(out, 'tok'), data.train, { vocabSize: env('VOCAB', 768) });
console.log('tokenizer', tok.vocabSize, Date.now() - t0, 'ms');
const recs = data.train.map((r) => ({ ...r, instruction: DEMO_INSTRUCTION }));
const enc = recs.map((r) => encodeRecord(r, tok, { style: 'chat' })).map((e) => (e.ok ? e.example : null)!);
const avg = enc.reduce((a, e) => a + e.input_ids.length, 0) / enc.length;
const avgT = enc.reduce((a, e) => a + e.input_ids.length - e.promptLength, 0) / enc.length;
console.log('avg tokens', avg.toFixed(1), 'target', avgT.toFixed(1));
console.log(tok.encode(demoPrompt(tok, data.train[0]!.input)).map((i) => tok.idToToken(i)).join(' '));
console.log(tok.encode(renderTarget(data.train[0]!)).map((i) => tok.idToToken(i)).join(' '));
const lm = data.train.map((r) => { const ids = [tok.bosId!, ...tok.encode(r.input, { addSpecialTokens: false }), tok.eosId!]; return { input_ids: ids, labels: ids }; });
console.log('avg sentence tokens', (lm.reduce((a, e) => a + e.input_ids.length, 0) / lm.length).toFixed(1));

const H = env('HIDDEN', 128), L = env('LAYERS', 4), NH = env('HEADS', 4);
const raw = { architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tok.vocabSize, hidden_size: H, intermediate_size: env('FF', 3 * H),
  num_hidden_layers: L, num_attention_heads: NH, num_key_value_heads: NH, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000,
  hidden_act: 'silu', tie_word_embeddings: false, bos_token_id: tok.bosId, eos_token_id: tok.eosId, pad_token_id: tok.padId, initializer_range: 0.02 };
const model = initModel(raw, { seed: 1 });

if (process.env.SPEED) {
  for (const dt of ['f32', 'bf16'] as const) {
    const B = 16, T = 64;
    const ids = tensor(Array.from({ length: B }, () => Array.from({ length: T }, (_, i) => (i * 7) % tok.vocabSize)), { dtype: 'i64' });
    enableFullFinetuning(model);
    for (let i = 0; i < 6; i++) {
      if (i === 1) t0 = Date.now();
      scope(() => { const lg = model.forward(ids); causalLmLoss(lg, ids).loss.backward(); });
    }
    console.log(dt, 'fwd+bwd', ((Date.now() - t0) / 5).toFixed(1), 'ms per', B * T, 'tokens');
    break;
  }
  process.exit(0);
}

// base pretraining
enableFullFinetuning(model);
const baseCfg = resolveConfig({ model: 'x', output_dir: join(out, 'base'), data: { train: 'x' }, training: {
  learning_rate: env('BASE_LR', 3e-3), lr_scheduler_type: 'cosine', warmup_steps: 20, max_steps: env('BASE_STEPS', 300),
  per_device_train_batch_size: env('BASE_BS', 32), logging_steps: 25, save_steps: null, seed: 1, weight_decay: 0.01 } }, []);
t0 = Date.now();
const tb = new Trainer({ model, training: baseCfg.training, runDir: join(out, 'base'), train: lm, padId: tok.padId!,
  onLog: (r) => console.log('base', JSON.stringify(r)) });
const br = await tb.train();
console.log('base done', br.wallSeconds.toFixed(1), 's', br.tokensPerSecond.toFixed(0), 'tok/s');
for (const [, p] of model.namedParameters()) p.requiresGrad_(false);

function evalGreedy(recs: MedRecord[], n: number): number {
  const con = taskConstraint('ddi-triplets', tok, { maxFieldBytes: 128 });
  let tp = 0, fp = 0, fn = 0;
  const t1 = Date.now();
  model.train(false);
  const sample = recs.slice(0, n);
  const B = 32;
  for (let s = 0; s < sample.length; s += B) {
    const batch = sample.slice(s, s + B);
    const prompts = batch.map((r) => { const e = encodeRecord({ ...r, instruction: DEMO_INSTRUCTION }, tok, { style: 'chat' }); return (e.ok ? e.example : null)!.input_ids.slice(0, (e.ok ? e.example : null)!.promptLength); });
    const gens: number[][] = prompts.map(() => []);
    const states = prompts.map(() => con.initial());
    const done = prompts.map(() => false);
    const seqs = prompts.map((p) => [...p]);
    for (let step = 0; step < 90; step++) {
      // no cache (prototype): recompute each sequence separately
      for (let b = 0; b < batch.length; b++) {
        if (done[b]) continue;
        const row = noGrad(() => scope(() => { const lg = model.forward(tensor([seqs[b]!], { dtype: 'i64' })); return lg.narrow(1, lg.size(1) - 1, 1).reshape([-1]).float().toFloat32Array(); }));
        const m = con.mask(states[b]!, 90 - step);
        let best = -1, bv = -Infinity;
        for (let i = 0; i < row.length; i++) if ((m.allowed[i] || (i === tok.eosId && m.eos)) && row[i]! > bv) { bv = row[i]!; best = i; }
        if (best === tok.eosId) { done[b] = true; continue; }
        states[b] = con.advance(states[b]!, best);
        gens[b]!.push(best); seqs[b]!.push(best);
      }
      if (done.every(Boolean)) break;
    }
    batch.forEach((r, b) => {
      const text = tok.decode(gens[b]!, { skipSpecialTokens: true });
      const pred = parseOutput('ddi-triplets', text).items;
      const g = new Set((r.gold as { head: string; relation: string; tail: string }[]).map((t) => `${t.head}|${t.relation}|${t.tail}`));
      const p = new Set(pred.map((t) => `${t.head}|${t.relation}|${t.tail}`));
      for (const x of p) if (g.has(x)) tp++; else fp++;
      for (const x of g) if (!p.has(x)) fn++;
      if (s === 0 && b < 3) console.log('  ', JSON.stringify(r.input), '=>', JSON.stringify(text));
    });
  }
  const P = tp / Math.max(1, tp + fp), R = tp / Math.max(1, tp + fn);
  console.log(`eval n=${sample.length} P ${P.toFixed(3)} R ${R.toFixed(3)} F1 ${(2 * P * R / Math.max(1e-9, P + R)).toFixed(3)} in ${((Date.now() - t1) / 1000).toFixed(1)}s`);
  return 0;
}
if (process.env.EVAL_BASE) evalGreedy(data.test, 20);

// LoRA fine-tune
const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'];
applyLora(model, { r: env('R', 32), lora_alpha: env('ALPHA', 64), lora_dropout: 0, target_modules: targets, init: true });
const ftCfg = resolveConfig({ model: 'x', output_dir: join(out, 'ft'), data: { train: 'x' }, training: {
  learning_rate: env('FT_LR', 2e-3), lr_scheduler_type: 'cosine', warmup_steps: 20, max_steps: env('FT_STEPS', 300),
  per_device_train_batch_size: env('FT_BS', 16), logging_steps: 25, save_steps: null, seed: 1 } }, []);
t0 = Date.now();
const tf = new Trainer({ model, training: ftCfg.training, runDir: join(out, 'ft'), train: enc, padId: tok.padId!,
  onLog: (r) => console.log('ft', JSON.stringify(r)) });
const fr = await tf.train();
console.log('ft done', fr.wallSeconds.toFixed(1), 's', fr.tokensPerSecond.toFixed(0), 'tok/s');
evalGreedy(data.test, env('NEVAL', 60));
void setNumThreads;

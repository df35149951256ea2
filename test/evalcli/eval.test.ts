// evaluateModel / extract on a REAL tiny random Llama through the engine (test/evalcli/tiny.ts): constrained decoding
// parses for 100% of prompts on every structured task; prompts, greedy tokens, test loss and counts checked against
// independent computations written out here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/model/load.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { noGrad, scope, setNumThreads, tensor } from '../../src/tensor/index.js';
import { alpacaPrompt } from '../../src/data/prompt.js';
import { TASKS, renderTarget } from '../../src/data/tasks.js';
import type { MedRecord } from '../../src/data/schema.js';
import { STRUCTURED_TASKS, type StructuredTask } from '../../src/infer/parse.js';
import { evaluateModel, generationEvaluator } from '../../src/eval/run-eval.js';
import { entitiesOf, extract, findSpans } from '../../src/infer/extract.js';
import { assertClose } from '../../src/util/close.js';
import { MedloraError } from '../../src/util/errors.js';
import { taskRecords, tinyFixture } from './tiny.js';

setNumThreads(1);

function load() {
  const fx = tinyFixture();
  return { model: loadModel(fx.model), tok: loadTokenizer(fx.model) };
}

/** More prompts per task: the fixture records with their inputs varied. */
function manyRecords(task: StructuredTask, n: number): MedRecord[] {
  const base = taskRecords()[task] as MedRecord[];
  return Array.from({ length: n }, (_, i) => {
    const b = base[i % base.length]!;
    return {
      ...b,
      id: `${b.id}-${i}`,
      input: i < base.length ? b.input : `${b.input} (case ${i}: ${'xyz'.slice(0, i % 4)})`,
    };
  });
}

test('constrained decoding: a real tiny random llama gives parseable output for 100% of prompts on every structured task', () => {
  const { model, tok } = load();
  try {
    let maskMs = 0,
      tokens = 0,
      seconds = 0,
      freeTokens = 0,
      freeSeconds = 0;
    for (const task of STRUCTURED_TASKS) {
      const recs = manyRecords(task, 8);
      for (const temperature of [0, 1]) {
        const run = evaluateModel(model, tok, recs, {
          maxNewTokens: 64,
          batchSize: 8,
          temperature,
          seed: 3,
          loss: false,
        });
        assert.equal(
          run.parse.rate,
          1,
          `${task} T=${temperature}: ${JSON.stringify(run.predictions.filter((p) => p.unparsed.length).map((p) => p.output))}`,
        );
        assert.equal(run.parse.clean, recs.length);
        for (const p of run.predictions)
          assert.equal(p.finish_reason, 'eos', `${task}: ${JSON.stringify(p.output)} did not end with EOS`);
        maskMs += run.timing.maskMs;
        tokens += run.timing.generatedTokens;
        seconds += run.timing.seconds;
        if (temperature === 0) console.log(`  ${task}: ${JSON.stringify(run.predictions[0]!.output).slice(0, 100)}`);
      }
      const free = evaluateModel(model, tok, recs.slice(0, 4), {
        maxNewTokens: 32,
        batchSize: 4,
        constrain: false,
        loss: false,
      });
      freeTokens += free.timing.generatedTokens;
      freeSeconds += free.timing.seconds;
      console.log(
        `  ${task}: unconstrained parse rate ${free.parse.rate.toFixed(2)} (${free.parse.hitLength}/4 hit max_new_tokens)`,
      );
    }
    console.log(
      `  constrained: ${((1000 * seconds) / tokens).toFixed(3)} ms per token, of which masks ${(maskMs / tokens).toFixed(3)} ms; ` +
        `unconstrained ${((1000 * freeSeconds) / freeTokens).toFixed(3)} ms per token (vocab ${tok.vocabSize})`,
    );
  } finally {
    model.dispose();
  }
});

/** Independent greedy decoding: full forward over [BOS + alpaca prompt + generated], argmax of the last row. */
function referenceGreedy(model: ReturnType<typeof loadModel>, ids: number[], steps: number, eos: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const next = scope(() =>
      noGrad(() => {
        const logits = model.forward(tensor([[...ids, ...out]], { dtype: 'i64' }));
        const T = logits.shape[1]!;
        const row = logits
          .narrow(1, T - 1, 1)
          .reshape([-1])
          .toFloat32Array();
        let best = 0;
        for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
        return best;
      }),
    );
    if (next === eos) break;
    out.push(next);
  }
  return out;
}

test('prompts are the training prompts: unconstrained greedy output equals an independent greedy decode of the Alpaca prompt', () => {
  const { model, tok } = load();
  try {
    const recs = [...taskRecords().chemicals, ...taskRecords()['drug-ae']] as MedRecord[];
    for (const r of recs) {
      const run = evaluateModel(model, tok, [r], { constrain: false, maxNewTokens: 8, loss: false });
      const prompt = [
        tok.bosId!,
        ...tok.encode(alpacaPrompt(TASKS[r.task].instruction, r.input), { addSpecialTokens: false }),
      ];
      const ref = referenceGreedy(model, prompt, 8, tok.eosId!);
      assert.equal(run.predictions[0]!.output, tok.decode(ref, { skipSpecialTokens: true }), r.id);
    }
  } finally {
    model.dispose();
  }
});

test('test loss equals a hand-computed token-weighted cross-entropy of answer + EOS', () => {
  const { model, tok } = load();
  try {
    const recs = taskRecords().chemicals as MedRecord[];
    const run = evaluateModel(model, tok, recs, { maxNewTokens: 32, batchSize: 2 });
    let sum = 0,
      n = 0;
    for (const r of recs) {
      const prompt = [
        tok.bosId!,
        ...tok.encode(alpacaPrompt(TASKS[r.task].instruction, r.input), { addSpecialTokens: false }),
      ];
      const target = [...tok.encode(renderTarget(r), { addSpecialTokens: false }), tok.eosId!];
      const ids = [...prompt, ...target];
      const logits = scope(() =>
        noGrad(() =>
          model
            .forward(tensor([ids], { dtype: 'i64' }))
            .reshape([ids.length, -1])
            .toFloat32Array(),
        ),
      );
      const V = logits.length / ids.length;
      // token t of the target is predicted at position t - 1: -log softmax(logits[t-1])[ids[t]]
      for (let t = prompt.length; t < ids.length; t++) {
        const row = logits.subarray((t - 1) * V, t * V);
        const mx = Math.max(...row);
        let z = 0;
        for (const v of row) z += Math.exp(v - mx);
        sum += -(row[ids[t]!]! - mx - Math.log(z));
        n++;
      }
    }
    assert.equal(run.loss!.tokens, n);
    assertClose([run.loss!.loss], [sum / n], { atol: 1e-4, label: 'test loss' });
    assertClose([run.loss!.perplexity], [Math.exp(sum / n)], { rtolMaxAbs: 1e-4, label: 'perplexity' });
  } finally {
    model.dispose();
  }
});

test('scores count exactly the strict matches between parsed predictions and gold (independent multiset count)', () => {
  const { model, tok } = load();
  try {
    const recs = manyRecords('chemicals', 8);
    // a gold item equal to what the model predicts for one record gives at least one true positive
    const first = evaluateModel(model, tok, recs.slice(0, 1), { maxNewTokens: 48, loss: false });
    const predicted = first.predictions[0]!.pred as string[];
    if (predicted.length) recs[0] = { ...recs[0]!, gold: [predicted[0]!, 'cisplatin'] };
    const run = evaluateModel(model, tok, recs, { maxNewTokens: 48, batchSize: 3, loss: false });
    let tp = 0,
      fp = 0,
      fn = 0;
    run.predictions.forEach((p, i) => {
      const gold = [...(recs[i]!.gold as string[])];
      for (const x of p.pred as string[]) {
        const k = gold.indexOf(x.trim());
        if (k >= 0) {
          tp++;
          gold.splice(k, 1);
        } else fp++;
      }
      fn += gold.length;
    });
    const m = run.score.metrics.micro;
    assert.deepEqual([m.tp, m.fp, m.fn], [tp, fp, fn]);
    if (predicted.length) assert.ok(tp >= 1);
    assertClose([m.f1], [2 * tp + fp + fn ? (2 * tp) / (2 * tp + fp + fn) : 1], { atol: 1e-12, label: 'micro F1' });
  } finally {
    model.dispose();
  }
});

test('findSpans: code-point offsets, case-insensitive, whitespace and dashes normalised (hand-computed)', () => {
  const t = 'Aspirin and ASPIRIN, then  aspirin';
  // "Aspirin" 0-7, "ASPIRIN" 12-19, "aspirin" after "then" + two spaces: 20 ", " ... count: ", then  " = 8 chars from 19
  assert.deepEqual(findSpans(t, 'aspirin'), [
    [0, 7],
    [12, 19],
    [27, 34],
  ]);
  assert.deepEqual(findSpans('acute  renal\tdamage here', 'renal damage'), [[7, 19]]);
  assert.deepEqual(findSpans('a beta\u2013blocker', 'Beta-blocker.'), [[2, 14]]);
  // "𝛼" is one code point (two UTF-16 units): offsets count it once
  assert.deepEqual(findSpans('𝛼-tocopherol and 𝛼-Tocopherol', '𝛼-tocopherol'), [
    [0, 12],
    [17, 29],
  ]);
  assert.deepEqual(findSpans('no match here', 'warfarin'), []);
  assert.deepEqual(findSpans('anything', '  '), []);
  assert.deepEqual(
    entitiesOf('drug-ae', [
      { head: 'A', tail: 'b' },
      { head: 'A', tail: 'c' },
    ]),
    [
      { role: 'drug', text: 'A' },
      { role: 'adverse_effect', text: 'b' },
      { role: 'adverse_effect', text: 'c' },
    ],
  );
  assert.deepEqual(entitiesOf('ade-email', { drug_name: 'X', adverse_events: ['y'] }), [
    { role: 'drug_name', text: 'X' },
    { role: 'adverse_event', text: 'y' },
  ]);
});

test('extract: structured results with spans that point at the entity in the text', () => {
  const { model, tok } = load();
  try {
    const inputs = [
      { id: 'a', text: 'Cisplatin and lithium caused renal damage.' },
      { id: 'b', text: 'Aspirin reduced fever.' },
    ];
    for (const task of STRUCTURED_TASKS) {
      const { results } = extract(model, tok, task, inputs, { maxNewTokens: 64 });
      assert.equal(results.length, 2);
      for (const [i, r] of results.entries()) {
        assert.equal(r.id, inputs[i]!.id);
        assert.deepEqual(r.unparsed, []);
        const cps = Array.from(inputs[i]!.text);
        for (const e of r.entities) {
          assert.deepEqual(e.span, e.occurrences[0] ?? null);
          for (const [s, end] of e.occurrences) {
            assert.equal(
              cps.slice(s, end).join('').toLowerCase().replace(/\s+/g, ' '),
              e.text
                .trim()
                .replace(/[.,;:]+$/, '')
                .toLowerCase()
                .replace(/\s+/g, ' '),
            );
          }
        }
      }
    }
  } finally {
    model.dispose();
  }
});

test('generationEvaluator: pooled micro scores over a validation sample of several tasks', () => {
  const { model, tok } = load();
  try {
    const recs = [
      ...manyRecords('chemicals', 3),
      ...manyRecords('drug-ae', 3),
      { id: 'q', task: 'qa', input: 'x?', gold: 'y' } as MedRecord,
    ];
    const ev = generationEvaluator(model, tok, recs, { samples: 5, maxNewTokens: 48 });
    const m = ev();
    assert.equal(m.gen_samples, 5);
    assert.equal(m.gen_parse_rate, 1);
    // pooled counts: recompute from the two per-task runs
    const a = evaluateModel(model, tok, recs.slice(0, 3), { maxNewTokens: 48, loss: false }).score.metrics.micro;
    const b = evaluateModel(model, tok, recs.slice(3, 5), { maxNewTokens: 48, loss: false }).score.metrics.micro;
    const tp = a.tp + b.tp,
      fp = a.fp + b.fp,
      fn = a.fn + b.fn;
    assertClose([m.gen_f1], [2 * tp + fp + fn ? (2 * tp) / (2 * tp + fp + fn) : 1], { atol: 1e-12, label: 'gen_f1' });
    assert.equal(m['gen_f1/chemicals'], a.f1);
    assert.throws(() => generationEvaluator(model, tok, [recs[6]!], { samples: 4 }), /no records of a structured task/);
  } finally {
    model.dispose();
  }
});

test('evaluateModel errors: mixed tasks, qa, too few new tokens for a constrained answer', () => {
  const { model, tok } = load();
  try {
    const mixed = [...taskRecords().chemicals, ...taskRecords().diseases] as MedRecord[];
    assert.throws(() => evaluateModel(model, tok, mixed), /task diseases, but the others are chemicals/);
    assert.throws(
      () => evaluateModel(model, tok, [{ id: 'q', task: 'qa', input: 'x', gold: 'y' }]),
      /not a structured extraction task/,
    );
    assert.throws(
      () => evaluateModel(model, tok, taskRecords()['ade-email'] as MedRecord[], { maxNewTokens: 5 }),
      (e: unknown) =>
        e instanceof MedloraError &&
        e.field === 'max_new_tokens' &&
        /^max_new_tokens 5 is too small for a constrained ade-email answer/.test(e.message),
    );
    assert.throws(
      () => evaluateModel(model, tok, taskRecords().chemicals as MedRecord[], { batchSize: 0 }),
      (e: unknown) =>
        e instanceof MedloraError &&
        e.field === 'batch_size' &&
        /^batch_size must be a positive integer/.test(e.message),
    );
    assert.throws(() => evaluateModel(model, tok, []), /no records/);
  } finally {
    model.dispose();
  }
});

// Constrained decoding on real tokenizers (gpt2: byte-level BPE; Mistral-7B: sentencepiece with byte fallback):
// token bytes agree with the real decoder, gold answers are never blocked, and a random model produces parseable
// output for 100% of prompts on every structured task, within its token budget. Prints the per-token overhead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { automatonConstraint } from '../../src/generate/constraints/index.js';
import { TASKS } from '../../src/data/tasks.js';
import { ConstraintVocab, TokenConstraint } from '../../src/generate/constraints/mask.js';
import { taskAutomaton } from '../../src/generate/constraints/tasks.js';
import { detectScheme } from '../../src/generate/constraints/vocab.js';
import { STRUCTURED_TASKS, parseOutput, type StructuredTask } from '../../src/infer/parse.js';
import type { TextTokenizer } from '../../src/tokenize/types.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';

const fixtureTokenizerDir = (name: string): string => sharedPath('fixtures', 'hf', name);
import { randomDecode, rng, seedOf } from './random-model.js';
import { ADE_TRAIN, adeEmailRecords } from './ade-email-fixture.js';

const TOKENIZERS = ['gpt2', 'Mistral-7B-v0.1'] as const;
const skip =
  !hasShared() || !TOKENIZERS.every((t) => existsSync(fixtureTokenizerDir(t)))
    ? 'needs ../shared/fixtures/hf tokenizers'
    : false;

const loaded = new Map<string, { tok: TextTokenizer; vocab: ConstraintVocab }>();
function load(name: string) {
  let v = loaded.get(name);
  if (!v) {
    const tok = loadTokenizer(fixtureTokenizerDir(name));
    v = { tok, vocab: new ConstraintVocab(tok) };
    loaded.set(name, v);
  }
  return v;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function concatBytes(vocab: ConstraintVocab, ids: number[]): Uint8Array {
  const parts = ids.map((id) => vocab.bytes[id]!);
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

test("token bytes reproduce the tokenizer's own decoding", { skip }, () => {
  const texts = [
    '<aspirin, may increase the effect of, warfarin>\n<A, int, B>',
    '- β-blocker\n- 5–FU (née “x”) 日本',
    '{"drug_name": "Abilify", "adverse_events": ["nausea"]}',
    'cimetidine | impotence',
  ];
  for (const name of TOKENIZERS) {
    const { tok, vocab } = load(name);
    assert.equal(detectScheme(tok), name === 'gpt2' ? 'byte-level' : 'sentencepiece');
    for (const text of texts) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      const s = utf8.decode(concatBytes(vocab, ids));
      // sentencepiece adds a dummy-prefix space to the first word; the decoder strips it again
      assert.ok(s === text || s === ` ${text}`, `${name}: ${JSON.stringify(s)} vs ${JSON.stringify(text)}`);
      assert.equal(tok.decode(ids), text);
    }
  }
});

test(
  'gold answers are never blocked: all 700 adverse-event targets pass token by token',
  { skip: skip || (!existsSync(ADE_TRAIN) && 'needs the ade-email corpus') },
  () => {
    const recs = adeEmailRecords();
    for (const name of TOKENIZERS) {
      const { tok, vocab } = load(name);
      const c = automatonConstraint(vocab, taskAutomaton('ade-email'));
      let blocked = 0;
      for (const [i, r] of recs.entries()) {
        let s = c.initial();
        const target = TASKS['ade-email'].render(r.gold); // what the model is trained to write
        for (const id of tok.encode(target, { addSpecialTokens: false })) {
          // the full mask for the first records (it must agree with advance), advance alone for the rest (fast)
          if (i < 10)
            assert.equal(
              c.mask(s).allowed[id],
              1,
              `${name} ${r.id}: token ${JSON.stringify(tok.idToToken(id))} blocked in ${target}`,
            );
          s = c.advance(s, id);
          if (s < 0) {
            blocked++;
            break;
          }
        }
        assert.ok(c.isComplete(s), `${name} ${r.id}: not complete after ${target}`);
      }
      assert.equal(blocked, 0);
    }
  },
);

// per task: prompts, budget (tokens incl. EOS)
const PROMPTS = 50;
// (tight enough to force the constraint to close answers early, loose enough for several items; minimums: 5 / 41)
const BUDGET: Record<StructuredTask, number> = {
  'ddi-triplets': 32,
  chemprot: 32,
  chemicals: 24,
  diseases: 24,
  influences: 24,
  'drug-ae': 24,
  'ade-email': 52,
};

for (const name of TOKENIZERS) {
  test(`random model + constraint: 100% parseable on every structured task (${name})`, { skip }, () => {
    const { tok, vocab } = load(name);
    const eos = tok.eosId!;
    let maskMs = 0,
      steps = 0;
    for (const task of STRUCTURED_TASKS) {
      const c = automatonConstraint(vocab, taskAutomaton(task));
      let items = 0,
        nones = 0;
      for (let run = 0; run < 2 * PROMPTS; run++) {
        const p = run >> 1;
        const prompt = `${task} prompt ${p}: extract from the text`;
        const sample = (run & 1) === 1; // every prompt decoded greedily and sampled
        const r = randomDecode({
          vocabSize: tok.vocabSize,
          eosId: eos,
          maxNewTokens: BUDGET[task],
          seed: seedOf(prompt),
          sample,
          constraint: c,
        });
        maskMs += r.maskMs;
        steps += r.steps;
        assert.ok(
          r.eos,
          `${name} ${task} #${p} ${sample ? 'sampled' : 'greedy'}: no EOS within ${BUDGET[task]} tokens`,
        );
        assert.ok(r.ids.length <= BUDGET[task]);
        const text = tok.decode(r.ids.slice(0, -1), { cleanUpTokenizationSpaces: false });
        const parsed = parseOutput(task, text);
        assert.deepEqual(parsed.unparsed, [], `${name} ${task} #${p}: ${JSON.stringify(text)}`);
        const n = Array.isArray(parsed.items)
          ? parsed.items.length
          : (parsed.items as { adverse_events: string[] }).adverse_events.length + 1;
        if (n === 0) nones++;
        items += n;
        // the automaton's bytes and the real decoder agree whenever the bytes are valid UTF-8
        try {
          const s = utf8.decode(concatBytes(vocab, r.ids.slice(0, -1)));
          assert.equal(s.replace(/^ /, ''), text.replace(/^ /, ''));
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
        }
        if (run === 0) console.log(`  ${name} ${task} greedy: ${JSON.stringify(text).slice(0, 150)}`);
      }
      console.log(
        `  ${name} ${task}: ${PROMPTS} prompts x (greedy, sampled): ${2 * PROMPTS}/${2 * PROMPTS} parse, ${items} items, ${nones} empty answers`,
      );
    }
    const perStep = maskMs / steps;
    console.log(
      `  ${name}: mask ${perStep.toFixed(3)} ms per generated token on average over ${steps} steps ` +
        `(${((1000 * perStep) / tok.vocabSize).toFixed(3)} µs per vocabulary entry, vocab ${tok.vocabSize})`,
    );
  });
}

test(
  "the pure-token shortcut and the mask cache give exactly the full trie walk's mask (random states, with budgets)",
  { skip },
  () => {
    const { tok, vocab } = load('gpt2');
    let compared = 0,
      steady = 0,
      hits = 0;
    for (const task of STRUCTURED_TASKS) {
      const c = automatonConstraint(vocab, taskAutomaton(task));
      for (let p = 0; p < 3; p++) {
        const r = rng(seedOf(`shortcut ${task} ${p}`));
        let s = c.initial();
        for (let left = BUDGET[task]; left >= 1; left--) {
          const fast = c.mask(s, left);
          const full = c.mask(s, left, undefined, { fullWalk: true });
          assert.equal(fast.count, full.count, `${task}: count differs at ${s}`);
          assert.deepEqual(fast.allowed, full.allowed);
          compared++;
          if (c instanceof TokenConstraint && c.automaton.steadyField(s) >= 0) steady++;
          if (full.eos && (fast.count === 0 || r() < 0.1)) break;
          // pick a random allowed token
          const allowedIds: number[] = [];
          full.allowed.forEach((v, id) => {
            if (v) allowedIds.push(id);
          });
          s = c.advance(s, allowedIds[Math.floor(r() * allowedIds.length)]!);
        }
      }
      hits += c.cacheStats.hits;
    }
    console.log(
      `  compared ${compared} masks (${steady} from field states via the shortcut, ${hits} served from the cache)`,
    );
    assert.ok(steady > 20 && hits > 20);
    void tok;
  },
);

test('without the constraint the same random model does not produce parseable answers', { skip }, () => {
  const { tok } = load('gpt2');
  let ok = 0,
    total = 0;
  for (const task of ['ade-email', 'ddi-triplets', 'influences'] as const) {
    for (let p = 0; p < 6; p++) {
      const r = randomDecode({
        vocabSize: tok.vocabSize,
        eosId: tok.eosId!,
        maxNewTokens: BUDGET[task],
        seed: seedOf(`${task} ${p}`),
        sample: p % 2 === 1,
      });
      const parsed = parseOutput(task, tok.decode(r.ids));
      total++;
      const n = Array.isArray(parsed.items) ? parsed.items.length : parsed.items.drug_name ? 1 : 0;
      if (parsed.unparsed.length === 0 && n > 0) ok++;
    }
  }
  console.log(`  unconstrained random gpt2: ${ok}/${total} outputs parse cleanly with at least one item`);
  assert.ok(ok < total / 2);
});

test('constraint errors are clear', { skip }, () => {
  const { vocab } = load('gpt2');
  const c = automatonConstraint(vocab, taskAutomaton('ade-email'));
  assert.throws(
    () =>
      randomDecode({
        vocabSize: vocab.vocabSize,
        eosId: vocab.eosId!,
        maxNewTokens: 10,
        seed: 1,
        sample: false,
        constraint: c,
      }),
    /max_new_tokens 10 is too small for a constrained answer of this task \(needs at least 38\)/,
  );
});

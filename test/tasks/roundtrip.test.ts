// Property test connecting every task's four views of its answer format: for random gold answers g,
// parse(render(g)) equals g, the task's decoding constraint accepts render(g) token by token with real tokenizers
// (byte-level BPE: gpt2, SmolLM2; sentencepiece with byte fallback: Mistral), and random logits under the constraint
// always produce text that parses (nothing unparsed) into a valid gold answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import type { TextTokenizer } from '../../src/tokenize/types.js';
import { automatonConstraint } from '../../src/generate/constraints/index.js';
import { ConstraintVocab } from '../../src/generate/constraints/mask.js';
import { taskAutomaton } from '../../src/generate/constraints/tasks.js';
import { getTask } from '../../src/data/tasks/index.js';
import { STRUCTURED_TASKS, type StructuredTask } from '../../src/infer/parse.js';
import { randomDecode, rng, seedOf } from '../eval/random-model.js';

const TOKENIZERS = ['gpt2', 'SmolLM2-135M-Instruct', 'Mistral-7B-v0.1'];
const dir = (n: string) => sharedPath('fixtures', 'hf', n);
const skip =
  !hasShared() || !TOKENIZERS.every((t) => existsSync(dir(t))) ? 'needs ../shared/fixtures/hf tokenizers' : false;

// ---- the task views under test (one adapter, so the test reads the same before and after the registry refactor)
const renderOf = (task: StructuredTask, g: unknown): string => getTask(task).render(g);
const parseOf = (task: StructuredTask, text: string) => getTask(task).parse(text);
const validOf = (task: StructuredTask, g: unknown): string | undefined => getTask(task).validate(g);
const constraintOf = (task: StructuredTask, vocab: ConstraintVocab) => automatonConstraint(vocab, taskAutomaton(task));

// ---- random gold answers: realistic names (letters, digits, inner spaces/hyphens/commas/parentheses, non-ASCII
// letters), trimmed, unique within an answer, and free of each format's delimiters
const WORDS = [
  'aspirin',
  'warfarin',
  '5-fluorouracil',
  'β-blocker',
  'café',
  'IL-6',
  'interferon alfa',
  'rash',
  'nausea',
  'QT prolongation',
  'Abilify',
  'acute kidney injury',
  'TNF(alpha)',
  "Crohn's disease",
  'vitamin B12',
  'naïve',
  'x',
];
function name(r: () => number, commas = false): string {
  const n = 1 + Math.floor(r() * 3);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(WORDS[Math.floor(r() * WORDS.length)]!);
  let s = parts.join(r() < 0.2 ? '-' : ' ');
  if (commas && r() < 0.3) s = `2,4-${s}`;
  return s;
}
function unique<T>(xs: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
}
const RELATIONS = [
  'may increase the anticoagulant activities of',
  'effect',
  'mechanism',
  'can decrease the absorption of',
];
const CPR = ['CPR:3', 'CPR:4', 'CPR:5', 'CPR:6', 'CPR:9'];

function randomGold(task: StructuredTask, r: () => number): unknown {
  const k = Math.floor(r() * 4); // 0..3 items (0: the empty answer)
  const list = <T>(f: () => T): T[] => Array.from({ length: k }, f);
  switch (task) {
    case 'chemicals':
    case 'diseases':
      return unique(
        list(() => name(r)),
        (x) => x,
      );
    case 'influences':
    case 'drug-ae':
      return unique(
        list(() => ({ head: name(r), tail: name(r) })),
        (p) => `${p.head}|${p.tail}`,
      );
    case 'ddi-triplets':
      return unique(
        list(() => ({
          head: name(r, true),
          relation: RELATIONS[Math.floor(r() * RELATIONS.length)]!,
          tail: name(r, true),
        })),
        (t) => JSON.stringify(t),
      );
    case 'chemprot':
      return unique(
        list(() => ({ head: name(r, true), relation: CPR[Math.floor(r() * CPR.length)]!, tail: name(r, true) })),
        (t) => JSON.stringify(t),
      );
    case 'ade-email':
      return { drug_name: name(r), adverse_events: list(() => name(r)) };
  }
}

const loaded = new Map<string, { tok: TextTokenizer; vocab: ConstraintVocab }>();
function load(n: string) {
  let v = loaded.get(n);
  if (!v) {
    const tok = loadTokenizer(dir(n));
    v = { tok, vocab: new ConstraintVocab(tok) };
    loaded.set(n, v);
  }
  return v;
}

test('parse(render(g)) == g for random gold answers of every task', () => {
  const failures: string[] = [];
  for (const task of STRUCTURED_TASKS) {
    const r = rng(seedOf(`roundtrip ${task}`));
    for (let i = 0; i < 200; i++) {
      const g = randomGold(task, r);
      assert.equal(validOf(task, g), undefined, `${task}: the generator made invalid gold ${JSON.stringify(g)}`);
      const text = renderOf(task, g);
      const p = parseOf(task, text);
      try {
        assert.deepEqual(p.unparsed, []);
        assert.deepEqual(p.items, g);
      } catch {
        failures.push(`${task}: ${JSON.stringify(text)}`);
        break;
      }
    }
  }
  assert.deepEqual(failures, []);
});

test('every task constraint accepts render(g) token by token with real tokenizers', { skip }, () => {
  const failures: string[] = [];
  for (const tn of TOKENIZERS) {
    const { tok, vocab } = load(tn);
    for (const task of STRUCTURED_TASKS) {
      const c = constraintOf(task, vocab);
      const r = rng(seedOf(`accept ${task} ${tn}`));
      for (let i = 0; i < 60; i++) {
        const text = renderOf(task, randomGold(task, r));
        const ids = tok.encode(text, { addSpecialTokens: false });
        let s = c.initial();
        let at = -1;
        for (let k = 0; k < ids.length && s >= 0; k++) {
          s = c.advance(s, ids[k]!);
          if (s < 0) at = k;
        }
        if (s < 0 || !c.isComplete(s)) {
          failures.push(
            `${tn} ${task}: ${JSON.stringify(text)} rejected at token ${at} ${JSON.stringify(at >= 0 ? tok.decode([ids[at]!]) : '(incomplete)')}`,
          );
          break;
        }
      }
    }
  }
  assert.deepEqual(failures, []);
});

test('random logits under every task constraint always produce text that parses into valid gold', { skip }, () => {
  const failures: string[] = [];
  for (const tn of TOKENIZERS) {
    const { tok, vocab } = load(tn);
    for (const task of STRUCTURED_TASKS) {
      const c = constraintOf(task, vocab);
      for (let p = 0; p < 10; p++) {
        const d = randomDecode({
          vocabSize: tok.vocabSize,
          eosId: tok.eosId!,
          maxNewTokens: 48,
          seed: seedOf(`${tn} ${task} ${p}`),
          sample: p % 2 === 0,
          constraint: c,
        });
        const ids = d.eos ? d.ids.slice(0, -1) : d.ids;
        const text = tok.decode(ids, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false });
        const parsed = parseOf(task, text);
        const bad = !d.eos
          ? 'no EOS within the budget'
          : parsed.unparsed.length
            ? `unparsed ${JSON.stringify(parsed.unparsed)}`
            : validOf(task, parsed.items);
        if (bad) {
          failures.push(`${tn} ${task}: ${JSON.stringify(text)}: ${bad}`);
          break;
        }
      }
    }
  }
  assert.deepEqual(failures, []);
});

// The precomputed schema masks (src/generate/constraints/schema.ts: per-frame context-independent tokens plus
// context-dependent subtrees) against the reference, one walk of the whole token trie from the state: equal on many
// random states and budgets, for the ICSR schema, a schema built to hit the corner cases (anyOf of objects sharing a
// first key, so a string is read by two stacks at once; unbounded and minLength strings; bounded numbers; nesting) and
// every built-in task, on the Llama-3 (128k, byte-level) and Mistral (32k, sentencepiece) tokenizers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { hasShared, sharedPath } from '../../../src/util/paths.js';
import { loadTokenizer } from '../../../src/tokenize/tokenizer.js';
import { loadTaskFile, structuredTaskNames, type JsonSchema } from '../../../src/data/tasks/index.js';
import { schemaConstraint, taskConstraint, type Constraint } from '../../../src/generate/constraints/index.js';
import { rng, seedOf } from '../../eval/random-model.js';

const TOKENIZERS = ['Meta-Llama-3-8B-Instruct', 'Mistral-7B-v0.1'];
const skip =
  !hasShared() || !TOKENIZERS.every((t) => existsSync(sharedPath('fixtures', 'hf', t)))
    ? 'needs ../shared/fixtures/hf tokenizers'
    : false;

const CORNERS: JsonSchema = {
  type: 'array',
  maxItems: 3,
  items: {
    anyOf: [
      {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'kind'],
        properties: { name: { type: 'string', maxLength: 12 }, kind: { type: 'string', enum: ['a', 'ab'] } },
      },
      {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', minLength: 2 },
          n: { type: 'number', minimum: -5, maximum: 250.5 },
          tags: { type: 'array', items: { type: 'string', maxLength: 3 }, maxItems: 2 },
          ok: { anyOf: [{ type: 'boolean' }, { type: 'null' }, { type: 'integer', minimum: 10, maximum: 99 }] },
        },
      },
    ],
  },
};

/** Positions where two masks differ (the checker; shown to fail on a planted difference below). */
function differences(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) d++;
  return d;
}

/** Walk random decodes (a random allowed token each step, from the reference mask), comparing at every state the
 * fast mask with the reference for the real budget and for a random small one (the near-the-end path). */
function compare(c: Constraint, seed: string, prompts: number, budget: number): { masks: number; maxDiff: number } {
  let masks = 0,
    maxDiff = 0;
  for (let p = 0; p < prompts; p++) {
    const r = rng(seedOf(`${seed} ${p}`));
    let s = c.initial();
    for (let left = budget; left >= 2; left--) {
      const next = c.mask(s, left, undefined, { fullWalk: true });
      for (const lim of [left, 2 + Math.floor(r() * 30)]) {
        const fast = c.mask(s, lim);
        const full = lim === left ? next : c.mask(s, lim, undefined, { fullWalk: true });
        const d = differences(fast.allowed, full.allowed);
        maxDiff = Math.max(maxDiff, d, Math.abs(fast.count - full.count), fast.eos === full.eos ? 0 : 1);
        masks++;
      }
      const ids: number[] = [];
      next.allowed.forEach((v, id) => {
        if (v) ids.push(id);
      });
      if (!ids.length || (next.eos && r() < 0.15)) break;
      s = c.advance(s, ids[Math.floor(r() * ids.length)]!);
    }
  }
  return { masks, maxDiff };
}

test('the mask checker sees a single differing token', () => {
  const a = new Uint8Array(10);
  const b = a.slice();
  assert.equal(differences(a, b), 0);
  b[7] = 1;
  assert.equal(differences(a, b), 1);
});

test(
  'precomputed schema masks equal the full trie walk on random states (ICSR, corner cases, built-in tasks)',
  { skip },
  () => {
    const icsr = loadTaskFile('configs/tasks/icsr.json');
    for (const tn of TOKENIZERS) {
      const tok = loadTokenizer(sharedPath('fixtures', 'hf', tn));
      const cases: Array<[string, Constraint, number]> = [
        ['icsr', schemaConstraint(icsr.resultSchema, tok), 2],
        ['corners', schemaConstraint(CORNERS, tok), 3],
        ...structuredTaskNames()
          .filter((t) => t !== 'icsr')
          .map((t): [string, Constraint, number] => [t, taskConstraint(t, tok), 3]),
      ];
      for (const [name, c, prompts] of cases) {
        const { masks, maxDiff } = compare(c, `${tn} ${name}`, prompts, c.minBudget() + 60);
        console.log(`  ${tn} ${name}: ${masks} masks compared, max difference ${maxDiff} tokens`);
        assert.ok(masks >= 8, `${name}: too few states visited`);
        assert.equal(maxDiff, 0, `${tn} ${name}: the fast mask differs from the full walk`);
      }
    }
  },
);

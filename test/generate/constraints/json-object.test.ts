// The "any JSON object" grammar (anyObjectConstraint, OpenAI's response_format json_object): text accepted byte by
// byte is exactly what JSON.parse reads as an object nested at most 8 deep (checked on hand-picked strings both ways),
// random logits under the constraint always give text that parses to such an object (many seeds, three vocabularies),
// and its precomputed masks equal the full trie walk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { hasShared, sharedPath } from '../../../src/util/paths.js';
import { loadTokenizer } from '../../../src/tokenize/tokenizer.js';
import { anyObjectConstraint, ANY_OBJECT_MAX_DEPTH, JsonAutomaton } from '../../../src/generate/constraints/index.js';
import { randomDecode, rng, seedOf } from '../../eval/random-model.js';

const TOKENIZERS = ['gpt2', 'Mistral-7B-v0.1', 'Meta-Llama-3-8B-Instruct'];
const skip =
  !hasShared() || !TOKENIZERS.every((t) => existsSync(sharedPath('fixtures', 'hf', t)))
    ? 'needs ../shared/fixtures/hf tokenizers'
    : false;

function depth(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  return 1 + Math.max(0, ...Object.values(v).map(depth));
}

test('any-object automaton: accepts compact JSON objects, refuses everything else', () => {
  const a = JsonAutomaton.anyObject(ANY_OBJECT_MAX_DEPTH);
  const complete = (t: string): boolean => {
    const s = a.run(t);
    return s >= 0 && a.isComplete(s);
  };
  const nest = (d: number): string => '{"a":'.repeat(d - 1) + '{}' + '}'.repeat(d - 1);
  const good = [
    '{}',
    ' {}',
    '{"a":1}',
    '{"":null,"x":[1,-2.5,"s",true,false,{}],"y":{"z":[]}}',
    '{"k\\"\\\\\\n\\u0001é😀":"v"}',
    '{"a":1,"a":2}',
    '{"n":-0.25,"m":0}',
    nest(8),
    '{"a":[[[[[[[1]]]]]]]}',
  ];
  const bad = [
    '[]',
    '"s"',
    '1',
    'null',
    '{"a":01}',
    '{"a":1,}',
    '{,}',
    '{"a" :1}',
    '{"a":1e5}',
    '{a:1}',
    "{'a':1}",
    '{"a":tru}',
    '{"a":"\u0001"}',
    nest(9),
    '{"a":[[[[[[[[1]]]]]]]]}',
    '{}{}',
  ];
  for (const t of good) {
    assert.ok(complete(t), `should accept ${t}`);
    const v = JSON.parse(t) as unknown;
    assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v) && depth(v) <= ANY_OBJECT_MAX_DEPTH);
  }
  for (const t of bad) assert.ok(!complete(t), `should refuse ${t}`);
  // the reference check above really tells depth 8 from 9
  assert.equal(depth(JSON.parse(nest(9))), 9);
});

test(
  'random logits under the json_object constraint always give text that JSON.parse reads as an object',
  { skip },
  () => {
    for (const tn of TOKENIZERS) {
      const tok = loadTokenizer(sharedPath('fixtures', 'hf', tn));
      const c = anyObjectConstraint(tok);
      assert.equal(anyObjectConstraint(tok), c, 'cached per tokenizer');
      const N = tn === 'Meta-Llama-3-8B-Instruct' ? 40 : 100;
      let deepest = 0,
        nonEmpty = 0;
      for (let p = 0; p < N; p++) {
        const budget = 8 + (p % 5) * 20;
        const d = randomDecode({
          vocabSize: tok.vocabSize,
          eosId: tok.eosId!,
          maxNewTokens: budget,
          seed: seedOf(`json_object ${tn} ${p}`),
          sample: p % 2 === 0,
          constraint: c,
        });
        assert.ok(d.eos, `${tn} prompt ${p}: the constrained decode must end with EOS within its budget`);
        const text = tok.decode(d.ids.slice(0, -1), { skipSpecialTokens: true, cleanUpTokenizationSpaces: false });
        let v: unknown;
        assert.doesNotThrow(() => (v = JSON.parse(text)), `${tn} prompt ${p}: ${JSON.stringify(text)}`);
        assert.ok(
          typeof v === 'object' && v !== null && !Array.isArray(v),
          `${tn} prompt ${p}: not an object: ${text}`,
        );
        assert.ok(depth(v) <= ANY_OBJECT_MAX_DEPTH);
        deepest = Math.max(deepest, depth(v));
        if (Object.keys(v as object).length) nonEmpty++;
      }
      console.log(`  ${tn}: ${N}/${N} parse as objects (${nonEmpty} non-empty, deepest nesting ${deepest})`);
      assert.ok(nonEmpty > N / 4, 'the random model should write members, not only {}');
      // the precomputed masks equal the full trie walk along random decodes
      let compared = 0;
      for (let p = 0; p < 2; p++) {
        const r = rng(seedOf(`json_object masks ${tn} ${p}`));
        let s = c.initial();
        for (let left = 60; left >= 2; left--) {
          const full = c.mask(s, left, undefined, { fullWalk: true });
          const fast = c.mask(s, left);
          assert.equal(fast.count, full.count, `${tn}: count differs at state ${s}`);
          assert.deepEqual(fast.allowed, full.allowed);
          compared++;
          const ids: number[] = [];
          full.allowed.forEach((v, id) => {
            if (v) ids.push(id);
          });
          if (!ids.length || (full.eos && r() < 0.1)) break;
          s = c.advance(s, ids[Math.floor(r() * ids.length)]!);
        }
      }
      console.log(`  ${tn}: precomputed masks equal the full walk on ${compared} states`);
    }
  },
);

// User-defined tasks from a JSON Schema: the supported subset (anything else is an error naming the schema path and
// keyword), validation errors with JSON paths, canonical rendering, field-level scoring checked against hand counts,
// the spec round trip, and the ICSR example (configs/tasks/icsr.json): render/parse/constraint agree, and random
// logits under the schema constraint produce output that parses and validates for every one of a few hundred prompts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import {
  compileSchema,
  defineTask,
  getTask,
  loadTaskFile,
  schemaTask,
  taskFromSpec,
  taskSpec,
  validate,
  type JsonSchema,
} from '../../src/data/tasks/index.js';
import { schemaConstraint } from '../../src/generate/constraints/index.js';
import { scoreRecords } from '../../src/eval/score.js';
import { DEFAULT_MATCH } from '../../src/eval/match.js';
import type { MedRecord } from '../../src/data/schema.js';
import { randomDecode, rng, seedOf } from '../eval/random-model.js';

const ICSR_FILE = 'configs/tasks/icsr.json';
const icsr = loadTaskFile(ICSR_FILE);
const GOLD = readFileSync('test/fixtures/icsr-gold.jsonl', 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as MedRecord);

test('unsupported schema features are errors naming the schema path and the keyword', () => {
  const bad: Array<[JsonSchema, RegExp]> = [
    [
      { type: 'object', properties: { a: { type: 'string', pattern: 'x' } } },
      /#\/properties\/a: "pattern" is not supported/,
    ],
    [
      { type: 'array', items: { type: 'integer', exclusiveMinimum: 0 } },
      /#\/items: "exclusiveMinimum" is not supported/,
    ],
    [{ type: ['string', 'null'] }, /#: "type" .* is not supported/],
    [{ type: 'object', additionalProperties: true }, /#: "additionalProperties" is only supported as false/],
    [{ anyOf: [{ type: 'string' }, { $ref: '#/x' }] }, /#\/anyOf\/1: "type" is required/],
    [{ type: 'object', properties: {}, required: ['x'] }, /#: "required" names "x"/],
    [{ type: 'string', format: 'date' }, /#: "format" is not supported/],
  ];
  for (const [s, re] of bad) assert.throws(() => compileSchema(s), re, JSON.stringify(s));
  assert.throws(
    () =>
      schemaTask(
        { name: 'x', instruction: 'y', schema: { type: 'object', properties: { a: { const: 1 } } } },
        'task.json',
      ),
    /task.json: "schema": JSON Schema #\/properties\/a: "type" is required/,
  );
});

test('validate: every error with its JSON path', () => {
  const schema = JSON.parse(readFileSync(ICSR_FILE, 'utf8')).schema as JsonSchema;
  const errs = validate(schema, {
    patient: { age: 130, sex: 'f' },
    suspect_drugs: [{ name: 'x', route: 'nasal', extra: 1 }],
    reactions: [],
  });
  assert.deepEqual(
    errs.map((e) => e.path),
    ['$.patient.age', '$.patient.sex', '$.suspect_drugs[0].route', '$.suspect_drugs[0]', '$.reactions', '$'],
  );
  assert.match(errs[0]!.message, /anyOf/);
  assert.match(errs[3]!.message, /property "extra" is not in the schema's properties/);
  assert.match(errs[5]!.message, /missing required property "seriousness"/);
  for (const r of GOLD) assert.deepEqual(validate(schema, r.gold), [], r.id);
});

test('canonical JSON: compact, keys in schema order, parse(render(g)) == g', () => {
  const g = {
    seriousness: [],
    reactions: [{ outcome: 'fatal', term: 'x "y"' }],
    suspect_drugs: [{ route: 'oral', name: 'a\\b' }],
    patient: { sex: 'male', age: null },
  };
  const text = icsr.render(g);
  assert.equal(
    text,
    '{"patient":{"age":null,"sex":"male"},"suspect_drugs":[{"name":"a\\\\b","route":"oral"}],"reactions":[{"term":"x \\"y\\"","outcome":"fatal"}],"seriousness":[]}',
  );
  assert.deepEqual(icsr.parse(text), { items: g, unparsed: [] });
  assert.deepEqual(icsr.parse('Here it is:\n```json\n' + text + '\n```').items, g);
  assert.deepEqual(icsr.parse('{"patient": 1').unparsed.length, 1);
  assert.throws(
    () => icsr.render({ patient: {} }),
    /task icsr: gold does not match the schema: \$\.patient: missing required property "age"/,
  );
});

test('field-level scores match hand-computed values (strict and relaxed, micro and macro over paths)', () => {
  const gold = GOLD.find((r) => r.id === 'icsr-4')!;
  const pred = {
    patient: { age: 52, sex: 'male' },
    suspect_drugs: [{ name: 'methotrexate', dose: '15 mg', route: 'oral' }],
    reactions: [{ term: 'Pancytopenia', onset_days: 30, outcome: 'fatal' }],
    seriousness: ['death'],
  };
  const preds = new Map([[gold.id, { value: { id: gold.id, pred }, where: 'test' }]]);
  // by hand: 13 gold leaves, 9 predicted; strict TP = age, methotrexate, one "oral", onset 30, fatal, death = 6
  const s = scoreRecords('icsr', [gold], preds, DEFAULT_MATCH).metrics;
  assert.deepEqual([s.micro.tp, s.micro.fp, s.micro.fn], [6, 3, 7]);
  assert.ok(
    Math.abs(s.micro.precision - 6 / 9) < 1e-12 &&
      Math.abs(s.micro.recall - 6 / 13) < 1e-12 &&
      Math.abs(s.micro.f1 - 12 / 22) < 1e-12,
  );
  // 10 paths; per-path F1: age 1, sex 0, name 2/3, dose 0, route 2/3, indication 0, term 0, onset 1, outcome 1, seriousness 2/3
  assert.equal(s.macro.types, 10);
  assert.ok(Math.abs(s.macro.f1 - 5 / 10) < 1e-12, `macro F1 ${s.macro.f1}`);
  assert.deepEqual(s.perType.find((t) => t.type === 'suspect_drugs[].route')!.tp, 1);
  // relaxed: "Pancytopenia" matches "pancytopenia" -> TP 7
  const r = scoreRecords('icsr', [gold], preds, { ...DEFAULT_MATCH, mode: 'relaxed' }).metrics;
  assert.deepEqual([r.micro.tp, r.micro.fp, r.micro.fn], [7, 2, 6]);
  assert.ok(Math.abs(r.micro.f1 - 14 / 22) < 1e-12);
  console.log(
    `  icsr-4 strict P ${s.micro.precision.toFixed(4)} R ${s.micro.recall.toFixed(4)} F1 ${s.micro.f1.toFixed(4)} macro ${s.macro.f1.toFixed(4)}; relaxed F1 ${r.micro.f1.toFixed(4)}`,
  );
});

test('task specs travel: taskSpec -> JSON -> taskFromSpec rebuilds the same task', () => {
  const spec = JSON.parse(JSON.stringify(taskSpec('icsr')));
  assert.equal(spec.kind, 'schema');
  assert.equal(taskFromSpec(spec), getTask('icsr'));
  assert.equal(taskFromSpec({ kind: 'builtin', name: 'ade-email' }).name, 'ade-email');
  assert.throws(
    () => defineTask({ name: spec.name, schema: spec.schema, instruction: 'other' }, 'cfg'),
    /task "icsr" is already defined with a different schema/,
  );
  assert.throws(() => defineTask({ name: 'chemicals', instruction: 'x', schema: { type: 'string' } }), /built-in task/);
});

// ---- with real tokenizers
const TOKENIZERS = ['gpt2', 'Mistral-7B-v0.1'];
const skip =
  !hasShared() || !TOKENIZERS.every((t) => existsSync(sharedPath('fixtures', 'hf', t)))
    ? 'needs ../shared/fixtures/hf tokenizers'
    : false;

test(
  'ICSR: the schema constraint accepts every gold rendering token by token; random logits always give valid JSON',
  { skip },
  () => {
    const schema = icsr.resultSchema;
    for (const tn of TOKENIZERS) {
      const tok = loadTokenizer(sharedPath('fixtures', 'hf', tn));
      const c = schemaConstraint(schema, tok);
      assert.equal(schemaConstraint(schema, tok), c, 'cached per (schema, tokenizer)');
      for (const r of GOLD) {
        const ids = tok.encode(icsr.render(r.gold), { addSpecialTokens: false });
        let s = c.initial();
        for (const id of ids) {
          s = c.advance(s, id);
          assert.ok(s >= 0, `${tn} ${r.id}: rejected at ${JSON.stringify(tok.decode([id]))}`);
        }
        assert.ok(c.isComplete(s), `${tn} ${r.id}: incomplete`);
      }
      // the per-state mask cache (strings share masks across positions) gives exactly the full trie walk's mask
      const r0 = rng(seedOf(`cache ${tn}`));
      let compared = 0;
      for (let p = 0; p < 4; p++) {
        let s = c.initial();
        for (let left = 250; left >= 2; left--) {
          const fast = c.mask(s, left);
          const full = c.mask(s, left, undefined, { fullWalk: true });
          assert.equal(fast.count, full.count, `${tn}: count differs at state ${s}`);
          assert.deepEqual(fast.allowed, full.allowed);
          compared++;
          if (full.eos && r0() < 0.2) break;
          const ids: number[] = [];
          full.allowed.forEach((v, id) => {
            if (v) ids.push(id);
          });
          if (!ids.length) break;
          s = c.advance(s, ids[Math.floor(r0() * ids.length)]!);
        }
      }
      console.log(`  ${tn}: cached masks equal the full walk on ${compared} states`);
      let valid = 0,
        eos = 0,
        maskMs = 0,
        steps = 0;
      const N = tn === 'gpt2' ? 200 : 60;
      for (let p = 0; p < N; p++) {
        const d = randomDecode({
          vocabSize: tok.vocabSize,
          eosId: tok.eosId!,
          maxNewTokens: 160,
          seed: seedOf(`icsr ${tn} ${p}`),
          sample: p % 2 === 0,
          constraint: c,
        });
        maskMs += d.maskMs;
        steps += d.steps;
        if (d.eos) eos++;
        const text = tok.decode(d.eos ? d.ids.slice(0, -1) : d.ids, {
          skipSpecialTokens: true,
          cleanUpTokenizationSpaces: false,
        });
        const parsed = icsr.parse(text);
        if (parsed.unparsed.length === 0 && validate(schema, JSON.parse(text.trim())).length === 0) valid++;
        else assert.fail(`${tn} prompt ${p}: ${JSON.stringify(text)}: ${parsed.unparsed.join('; ')}`);
      }
      console.log(
        `  ${tn}: ${valid}/${N} random-logit outputs parse and validate (${eos} ended by EOS); mask ${(maskMs / steps).toFixed(3)} ms/token`,
      );
      assert.equal(valid, N);
    }
  },
);

test('a random schema: render/parse/validate agree on random values', () => {
  const r = rng(seedOf('schema values'));
  const t = icsr;
  for (let i = 0; i < 50; i++) {
    const g = {
      patient: {
        age: r() < 0.3 ? null : Math.floor(r() * 121),
        sex: ['female', 'male', 'unknown'][Math.floor(r() * 3)],
      },
      suspect_drugs: [{ name: `drug ${i} "é"`, ...(r() < 0.5 ? { dose: `${i} mg` } : {}) }],
      reactions: [{ term: `r\n${i}`, outcome: 'unknown' }],
      seriousness: [],
    };
    assert.equal(t.validate(g), undefined);
    assert.deepEqual(t.parse(t.render(g)), { items: g, unparsed: [] });
  }
});

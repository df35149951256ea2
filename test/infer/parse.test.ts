// Parser tests: the agreed rendered formats, their harmless variations, and what must be reported as unparsed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseAdeEmail,
  parseBullets,
  parseOutput,
  parsePairs,
  parseTriplets,
  validateStructured,
} from '../../src/infer/parse.js';

test('triplets: canonical lines, first/last comma split, variations', () => {
  const r = parseTriplets('<aspirin, may increase the effect of, warfarin>\n<5-fluorouracil, leucovorin, CPR:3, EGFR>');
  assert.deepEqual(r.items, [
    { head: 'aspirin', relation: 'may increase the effect of', tail: 'warfarin' },
    // the relation takes everything between the first and the last comma
    { head: '5-fluorouracil', relation: 'leucovorin, CPR:3', tail: 'EGFR' },
  ]);
  assert.deepEqual(r.unparsed, []);
  const v = parseTriplets('```\n- <A ,  effect , B>.\r\n  2. <C, int, D>;\n<E, mechanism, F>, <G, advise, H>\n```');
  assert.deepEqual(
    v.items.map((t) => `${t.head}/${t.relation}/${t.tail}`),
    ['A/effect/B', 'C/int/D', 'E/mechanism/F', 'G/advise/H'],
  );
  assert.deepEqual(v.unparsed, []);
});

test('triplets: none, empty, and unparseable lines are reported', () => {
  assert.deepEqual(parseTriplets('none'), { items: [], unparsed: [] });
  assert.deepEqual(parseTriplets('None.'), { items: [], unparsed: [] });
  assert.deepEqual(parseTriplets('  \n'), { items: [], unparsed: [] });
  const r = parseTriplets('<a, b>\nHere are the interactions:\n<x, effect, y>\n<p, q, >');
  assert.deepEqual(r.items, [{ head: 'x', relation: 'effect', tail: 'y' }]);
  assert.deepEqual(r.unparsed, ['<a, b>', 'Here are the interactions:', '<p, q, >']);
});

test('bullets: markers, punctuation, quotes; headers are unparsed', () => {
  const r = parseBullets(
    'List of extracted chemicals:\n- cocaine\n* "nicotine".\n• L-dopa\n3) lithium carbonate\nhaloperidol',
  );
  assert.deepEqual(r.items, ['cocaine', 'nicotine', 'L-dopa', 'lithium carbonate', 'haloperidol']);
  assert.deepEqual(r.unparsed, ['List of extracted chemicals:']);
  assert.deepEqual(parseBullets('- none'), { items: [], unparsed: [] });
  assert.deepEqual(parseBullets('-\n- x'), { items: ['x'], unparsed: ['-'] });
});

test('pairs: head | tail with optional bullet; wrong arity is unparsed', () => {
  const r = parsePairs('- cimetidine | impotence\nranitidine|  confusion.\na | b | c\nno pipe here');
  assert.deepEqual(r.items, [
    { head: 'cimetidine', tail: 'impotence' },
    { head: 'ranitidine', tail: 'confusion' },
  ]);
  assert.deepEqual(r.unparsed, ['a | b | c', 'no pipe here']);
});

test('ade-email: compact JSON, fenced JSON, prose around it, bad JSON', () => {
  assert.deepEqual(parseAdeEmail('{"drug_name": "Abilify", "adverse_events": ["nausea", "vomiting"]}'), {
    items: { drug_name: 'Abilify', adverse_events: ['nausea', 'vomiting'] },
    unparsed: [],
  });
  assert.deepEqual(parseAdeEmail('```json\n{ "drug_name" : "X",\n "adverse_events": [] }\n```').items, {
    drug_name: 'X',
    adverse_events: [],
  });
  assert.deepEqual(parseAdeEmail('Sure! {"drug_name": "Y", "adverse_events": ["rash", 3]} hope this helps').items, {
    drug_name: 'Y',
    adverse_events: ['rash'],
  });
  assert.deepEqual(parseAdeEmail('Sure! {"drug_name": "Y", "adverse_events": ["rash", 3]}').unparsed, [
    'adverse_events item: 3',
  ]);
  const bad = parseAdeEmail('{"drug_name": "Y", "adverse_events": ["rash"');
  assert.deepEqual(bad.items, { drug_name: '', adverse_events: [] });
  assert.equal(bad.unparsed.length, 1);
  assert.deepEqual(parseAdeEmail(''), { items: { drug_name: '', adverse_events: [] }, unparsed: [] });
});

test('parseOutput dispatches per task', () => {
  assert.deepEqual(parseOutput('chemprot', '<a, CPR:4, b>').items, [{ head: 'a', relation: 'CPR:4', tail: 'b' }]);
  assert.deepEqual(parseOutput('drug-ae', 'a | b').items, [{ head: 'a', tail: 'b' }]);
  assert.deepEqual(parseOutput('diseases', '- x').items, ['x']);
});

test('validateStructured names the place and the expected shape', () => {
  assert.throws(
    () => validateStructured('chemicals', [1], 'p.jsonl:3'),
    /p\.jsonl:3: "pred" for task chemicals does not match its answer schema: \$\[0\]: expected a string/,
  );
  assert.throws(
    () => validateStructured('ade-email', { drug_name: 'x' }, 'p.jsonl:1'),
    /p\.jsonl:1: .*\$: missing required property "adverse_events"/,
  );
  assert.throws(
    () => validateStructured('influences', [{ head: 'a' }], 'f:2'),
    /\$\[0\]: missing required property "tail"/,
  );
});

// The generated demo corpus: seeded and reproducible, canonical records, gold consistent with each sentence,
// both one- and two-interaction inputs and reverse-order templates present.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEMO_DRUGS, DEMO_TEMPLATES, generateDemoCorpus } from '../../src/data/demo-corpus.js';
import { recordProblem } from '../../src/data/jsonl.js';
import { relationOfTemplate } from '../../src/data/import/drugbank-sentences.js';
import { renderTarget } from '../../src/data/tasks.js';

test('demo corpus is reproducible per seed and canonical', () => {
  const a = generateDemoCorpus({ count: 200, seed: 1 });
  assert.deepEqual(a, generateDemoCorpus({ count: 200, seed: 1 }));
  assert.notDeepEqual(a, generateDemoCorpus({ count: 200, seed: 2 }));
  assert.equal(a.length, 200);
  assert.equal(new Set(a.map((r) => r.input)).size, 200);
  for (const r of a) assert.equal(recordProblem(r), undefined);
  assert.ok(DEMO_DRUGS.length >= 60 && new Set(DEMO_DRUGS).size === DEMO_DRUGS.length);
  assert.throws(() => generateDemoCorpus({ count: 0, seed: 1 }), /positive integer/);
});

test('every gold triplet is recoverable from its sentence; relations follow the importer convention', () => {
  const recs = generateDemoCorpus({ count: 300, seed: 9 });
  let two = 0,
    reversed = 0;
  for (const r of recs) {
    if (r.gold.length === 2) two++;
    for (const t of r.gold) {
      const lower = r.input.toLowerCase();
      assert.ok(lower.includes(t.head) && lower.includes(t.tail), r.input);
      if (lower.indexOf(t.tail) < lower.indexOf(t.head)) reversed++;
    }
    assert.equal(renderTarget(r).split('\n').length, r.gold.length);
  }
  assert.ok(two > 20 && two < 120, `two-interaction records: ${two}`);
  assert.ok(reversed > 20, `reverse-order triplets: ${reversed}`);
  // the same relation phrase the drugbank-sentences importer derives from the template
  for (const t of DEMO_TEMPLATES) {
    assert.equal(relationOfTemplate(t.text.replace('{drug1}', '#Drug1').replace('{drug2}', '#Drug2')), t.relation);
  }
});

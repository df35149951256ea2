// Every importer on the real corpora in ../shared/corpora, with counts checked against each corpus' SOURCE.md
// (numbers quoted from those files below), plus error paths on small broken inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { getImporter } from '../../src/data/import/index.js';
import { newCounts, type ImportCounts, type ImportOptions } from '../../src/data/import/common.js';
import { loadTemplates, relationOfTemplate } from '../../src/data/import/drugbank-sentences.js';
import { parseCsv } from '../../src/data/import/csv.js';
import { recordProblem } from '../../src/data/jsonl.js';
import type { MedRecord } from '../../src/data/schema.js';
import { MedloraError } from '../../src/util/errors.js';

const skip = hasShared() ? false : 'no ../shared fixtures (hasShared() is false)';
const C = (...p: string[]): string => sharedPath('corpora', ...p);

async function run(
  format: string,
  path: string,
  opts: ImportOptions = {},
): Promise<{ recs: MedRecord[]; c: ImportCounts }> {
  const c = newCounts();
  const recs: MedRecord[] = [];
  for await (const r of getImporter(format).read(path, c, opts)) recs.push(r);
  for (const r of recs) assert.equal(recordProblem(r), undefined, `record ${r.id} is not canonical`);
  return { recs, c };
}

test('ddi2013 Train: per-type counts equal SOURCE.md', { skip }, async () => {
  const { recs, c } = await run('ddi2013', C('ddi2013', 'DDICorpus', 'Train'));
  // SOURCE.md: Train total positives mechanism 1,319 / effect 1,687 / advise 826 / int 188 (+1 untyped)
  assert.deepEqual(c.byLabel, { mechanism: 1319, effect: 1687, advise: 826, int: 188 });
  assert.equal(c.notes.untyped_positive, 1);
  // docs 572+142, sentences 5,675+1,301, entities 12,929+1,836, pairs 26,005+1,787, negatives 22,216+1,555
  assert.equal(c.notes.documents, 572 + 142);
  assert.equal(c.notes.sentences, 5675 + 1301);
  assert.equal(recs.length, 5675 + 1301);
  assert.equal(c.notes.entities, 12929 + 1836);
  assert.equal(c.notes.pairs, 26005 + 1787);
  assert.equal(c.notes.negative, 22216 + 1555);
  // the SOURCE.md example sentence
  const s = recs.find((r) => r.id === 'DDI-DrugBank.d166.s0')!;
  assert.equal(s.input, 'Trecator has been found to temporarily raise serum concentrations of isoniazid.');
  assert.deepEqual(s.gold, [{ head: 'Trecator', relation: 'mechanism', tail: 'isoniazid' }]);
  assert.equal(s.meta?.doc, 'DDI-DrugBank.d166');
});

test('ddi2013 MedLine part alone: SOURCE.md row', { skip }, async () => {
  const { c } = await run('ddi2013', C('ddi2013', 'DDICorpus', 'Train', 'MedLine'));
  assert.deepEqual(c.byLabel, { mechanism: 62, effect: 152, advise: 8, int: 10 });
  assert.equal(c.notes.negative, 1555);
});

test(
  'drugbank-sentences: every row matches one of the 86 templates, same type as the derived CSV',
  { skip },
  async () => {
    const dir = C('drugbank-ddi-sentences');
    const { recs, c } = await run('drugbank-sentences', join(dir, 'Clean_drub_interactions.csv'));
    assert.equal(c.notes.templates, 86);
    assert.equal(recs.length, 6073); // SOURCE.md: 7,073 upstream rows, 1,000 withheld -> 6,073 here
    assert.equal(c.notes.matched, 6073);
    assert.equal(c.notes.unmatched, undefined);
    // independent oracle: derived_Clean_drub_interactions_typed.csv (made with a separate matcher) gives each row's type
    const { readFileSync } = await import('node:fs');
    const derived = parseCsv(
      readFileSync(join(dir, 'derived_Clean_drub_interactions_typed.csv'), 'utf8'),
      'derived',
    ).slice(1);
    assert.equal(derived.length, recs.length);
    for (let i = 0; i < recs.length; i++) {
      assert.equal(recs[i]!.meta?.ddi_type, derived[i]!.cells[3], `row ${i + 2}`);
    }
    const types = new Set(derived.map((r) => r.cells[3]));
    assert.equal(c.notes.types_used, types.size);
    assert.ok(types.size <= 43, 'SOURCE.md: only 43 of 86 types occur upstream');
    const r = recs[0]!;
    assert.deepEqual(r.gold, [
      { head: 'Salicylic acid', relation: 'may increase the neuroexcitatory activities of', tail: 'Fleroxacin' },
    ]);
  },
);

test('template relation phrases (hand-derived)', () => {
  assert.equal(
    relationOfTemplate('#Drug1 may increase the anticoagulant activities of #Drug2.'),
    'may increase the anticoagulant activities of',
  );
  assert.equal(
    relationOfTemplate('The metabolism of #Drug2 can be decreased when combined with #Drug1.'),
    'can decrease the metabolism of',
  );
  assert.equal(
    relationOfTemplate(
      'The risk of a hypersensitivity reaction to #Drug2 is increased when it is combined with #Drug1.',
    ),
    'can increase the risk of a hypersensitivity reaction to',
  );
  assert.equal(
    relationOfTemplate('The risk or severity of heart failure can be increased when #Drug2 is combined with #Drug1.'),
    'can increase the risk or severity of heart failure when combined with',
  );
  assert.throws(() => relationOfTemplate('#Drug2 and #Drug1 interact.'), /not understood/);
});

test('all 86 templates get distinct relation phrases', { skip }, () => {
  const t = loadTemplates(C('drugbank-ddi-sentences', 'Interaction_information.csv'));
  assert.equal(new Set(t.map((x) => x.relation)).size, 86);
});

test('bc5cdr training set: mentions and CID counts equal SOURCE.md', { skip }, async () => {
  const { recs, c } = await run('bc5cdr', C('bc5cdr', 'CDR_TrainingSet.PubTator.txt'));
  // SOURCE.md: 500 docs, 9,385 mentions (5,203 Chemical / 4,182 Disease), 1,038 CID
  assert.equal(c.notes.documents, 500);
  assert.equal(c.notes.mentions_chemical, 5203);
  assert.equal(c.notes.mentions_disease, 4182);
  assert.equal(c.notes.cid, 1038);
  assert.deepEqual(c.byTask, { chemicals: 500, diseases: 500, influences: 500 });
  const inf = recs.find((r) => r.id === '8701013-influences');
  if (inf) assert.ok((inf.gold as Array<{ head: string }>).some((p) => p.head === 'Famotidine'));
});

test('bc5cdr development set and sample counts', { skip }, async () => {
  const dev = await run('bc5cdr', C('bc5cdr', 'CDR_DevelopmentSet.PubTator.txt'));
  assert.deepEqual([dev.c.notes.mentions_chemical, dev.c.notes.mentions_disease, dev.c.notes.cid], [5347, 4244, 1012]);
  const sample = await run('bc5cdr', C('bc5cdr', 'CDR_sample.txt'));
  assert.deepEqual(
    [sample.c.notes.documents, sample.c.notes.mentions_chemical, sample.c.notes.mentions_disease, sample.c.notes.cid],
    [50, 502, 423, 124],
  );
});

test('chemprot training: abstracts, entities and gold relations per CPR group equal SOURCE.md', { skip }, async () => {
  const { c } = await run('chemprot', C('chemprot', 'ChemProt_Corpus', 'chemprot_training'));
  assert.equal(c.notes.abstracts, 1020);
  assert.deepEqual(
    [c.notes.entities_CHEMICAL, c.notes['entities_GENE-Y'], c.notes['entities_GENE-N']],
    [13017, 8348, 4387],
  );
  // gold_standard.tsv rows 4,157 (3:768, 4:2,254, 5:173, 6:235, 9:727)
  assert.equal(c.notes.gold_relations, 4157);
  assert.deepEqual(c.byLabel, { 'CPR:3': 768, 'CPR:4': 2254, 'CPR:5': 173, 'CPR:6': 235, 'CPR:9': 727 });
  const dev = await run('chemprot', C('chemprot', 'ChemProt_Corpus', 'chemprot_development'));
  assert.deepEqual(dev.c.byLabel, { 'CPR:3': 550, 'CPR:4': 1094, 'CPR:5': 116, 'CPR:6': 199, 'CPR:9': 457 });
});

test('ade-corpus: relations, sentences and negatives equal SOURCE.md', { skip }, async () => {
  const { recs, c } = await run('ade-corpus', C('ade-corpus-v2'));
  assert.equal(c.notes.relations, 6821);
  assert.equal(c.notes.negative_rows, 16695);
  // 16,688 unique negative sentences -> 7 duplicate rows
  assert.equal(c.notes.negative_duplicates, 16695 - 16688);
  const pos = recs.filter((r) => (r.gold as unknown[]).length > 0);
  // 4,272 positive (PMID, sentence) units; SOURCE.md's "6,632 unique (sentence, drug, AE) triples"
  assert.equal(pos.length, 4272);
  const triples = new Set(
    pos.flatMap((r) => (r.gold as Array<{ head: string; tail: string }>).map((p) => `${r.input}|${p.head}|${p.tail}`)),
  );
  assert.equal(triples.size, 6632);
  assert.equal(recs.length - pos.length, 16688);
});

test('ade-email: 700 train records, 50 drugs; 759 in the per-drug reports', { skip }, async () => {
  const tr = await run(
    'ade-email',
    C('ade-email-entity-extraction', 'entity_extraction', 'entity-extraction-train-data.json'),
  );
  assert.equal(tr.recs.length, 700);
  assert.deepEqual(tr.recs[0]!.gold, { drug_name: 'Onglyza', adverse_events: ['painful urination'] });
  const all = await run('ade-email', C('ade-email-entity-extraction', 'entity_extraction_reports'));
  assert.equal(all.recs.length, 759);
  assert.equal(all.c.notes.drugs, 50);
  assert.equal(all.c.notes.adverse_events, 1512);
});

test(
  'generic jsonl: medical-ner-instruct prompts are detected as the three tasks with SOURCE.md counts',
  { skip },
  async () => {
    const { recs, c } = await run('jsonl', C('medical-ner-instruct', 'splits_20251111', 'train.jsonl'));
    assert.deepEqual(c.byTask, { diseases: 800, chemicals: 800, influences: 800 });
    // SOURCE.md: 8,070 "- item" lines in completions; 3 empty completions
    const items = Object.values(c.byLabel).reduce((a, b) => a + b, 0);
    assert.equal(items, 8070);
    assert.equal(recs.filter((r) => (r.gold as unknown[]).length === 0).length, 3);
    // the instruction is the task's own (not stored per record) and the input is only the article
    assert.equal(recs[0]!.instruction, undefined);
    assert.ok(!recs[0]!.input.includes('List of extracted'));
  },
);

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'medlora-import-'));
}

test('generic jsonl: the three shapes, and clear errors for bad lines', async () => {
  const d = tmp();
  const f = join(d, 'g.jsonl');
  writeFileSync(
    f,
    [
      JSON.stringify({ instruction: 'Answer.', input: 'What is warfarin?', output: 'An anticoagulant.' }),
      JSON.stringify({ prompt: 'Q?', completion: 'A.' }),
      JSON.stringify({
        messages: [
          { role: 'system', content: 'S' },
          { role: 'user', content: 'U' },
          { role: 'assistant', content: 'A' },
        ],
      }),
    ].join('\n'),
  );
  const { recs } = await run('jsonl', f);
  assert.deepEqual(
    recs.map((r) => [r.task, r.instruction, r.input, r.gold]),
    [
      ['qa', 'Answer.', 'What is warfarin?', 'An anticoagulant.'],
      ['qa', undefined, 'Q?', 'A.'],
      ['qa', 'S', 'U', 'A'],
    ],
  );
  const bad = join(d, 'bad.jsonl');
  writeFileSync(
    bad,
    `${JSON.stringify({ prompt: 'Q', completion: 'A' })}\n{"prompt": "x"\n${JSON.stringify({ prompt: 'Q' })}\n`,
  );
  await assert.rejects(run('jsonl', bad), /bad\.jsonl:2: invalid JSON/);
  const invalid: NonNullable<ImportOptions['invalid']> = [];
  const ok = await run('jsonl', bad, { skipInvalid: true, invalid });
  assert.equal(ok.recs.length, 1);
  assert.deepEqual(
    invalid.map((x) => x.line),
    [2, 3],
  );
  assert.match(invalid[1]!.error, /"completion" is missing/);
  // --task with an output that is not in the task's format
  const tf = join(d, 't.jsonl');
  writeFileSync(tf, `${JSON.stringify({ prompt: 'text', completion: 'warfarin, aspirin' })}\n`);
  await assert.rejects(
    run('jsonl', tf, { task: 'drug-ae' }),
    /record 1: as task drug-ae: cannot read "warfarin, aspirin" as task drug-ae's format/,
  );
  await assert.rejects(run('jsonl', tf, { task: 'nonsense' }), /unknown task "nonsense"/);
  const empty = join(d, 'empty.jsonl');
  writeFileSync(empty, '\n\n');
  await assert.rejects(run('jsonl', empty), /empty\.jsonl: is empty/);
});

test('ddi2013 XML errors name file and line', async () => {
  const d = tmp();
  writeFileSync(
    join(d, 'a.xml'),
    '<?xml version="1.0"?>\n<document id="D1">\n  <sentence id="D1.s0" text="A &amp; B">\n  </sentences>\n</document>\n',
  );
  await assert.rejects(
    run('ddi2013', d),
    /a\.xml:4: closing tag <\/sentences> does not match <sentence> opened on line 3/,
  );
  writeFileSync(join(d, 'a.xml'), '<document id="D1"><sentence id="s" text="x &foo; y"/></document>');
  await assert.rejects(run('ddi2013', d), /a\.xml:1: unknown XML entity &foo;/);
  writeFileSync(
    join(d, 'a.xml'),
    '<document id="D1"><sentence id="s" text="A &amp; B&#xd;&#xa;"><entity id="e0" text="A"/><entity id="e1" text="B"/>' +
      '<pair id="p" e1="e0" e2="e1" ddi="true" type="effect"/></sentence></document>',
  );
  const { recs } = await run('ddi2013', d);
  assert.equal(recs[0]!.input, 'A & B\r\n');
  assert.deepEqual(recs[0]!.gold, [{ head: 'A', relation: 'effect', tail: 'B' }]);
  writeFileSync(
    join(d, 'a.xml'),
    '<document id="D1"><sentence id="s" text="x"><pair id="p" e1="e0" e2="e1" ddi="true" type="effect"/></sentence></document>',
  );
  await assert.rejects(run('ddi2013', d), /names an entity not in its sentence/);
  await assert.rejects(run('ddi2013', join(d, 'nope')), /no such directory/);
  const e = tmp();
  await assert.rejects(run('ddi2013', e), /no \.xml files/);
});

test('other importers: malformed inputs give clear errors', async () => {
  const d = tmp();
  const csv = join(d, 's.csv');
  writeFileSync(
    join(d, 'Interaction_information.csv'),
    'Interaction type,Description,Subject,DDI type\n6,#Drug1 may increase the anticoagulant activities of #Drug2.,2,DDI type 46\n',
  );
  writeFileSync(
    csv,
    'Drug 1,Drug 2,Interaction Description\nA,B,A may increase the anticoagulant activities of B.\nA,B,"A is fine with B."\n',
  );
  await assert.rejects(run('drugbank-sentences', csv), /s\.csv:3: sentence matches no interaction template/);
  writeFileSync(csv, 'Drug1,Drug 2,Interaction Description\n');
  await assert.rejects(run('drugbank-sentences', csv), /s\.csv:1: missing column "Drug 1"/);
  const pt = join(d, 'p.txt');
  writeFileSync(pt, '1|t|T\n1|a|A\n1\t0\t1\tT\tGene\tX\n');
  await assert.rejects(run('bc5cdr', pt), /p\.txt:3: mention type "Gene"/);
  const em = join(d, 'e.json');
  writeFileSync(em, JSON.stringify([{ input: 'x', output: '{"drug_name": "A"}' }]));
  await assert.rejects(run('ade-email', em), /element 0: output\.adverse_events must be an array/);
  writeFileSync(em, '');
  await assert.rejects(run('ade-email', em), /is empty/);
  const ad = join(d, 'ade');
  mkdirSync(ad);
  writeFileSync(join(ad, 'DRUG-AE.rel'), '1|sentence|ae|0|2\n');
  await assert.rejects(run('ade-corpus', ad), /DRUG-AE\.rel:1: 5 "\|"-separated fields, expected 8/);
  await assert.rejects(run('chemprot', d), /expected exactly one \*_abstracts\.tsv/);
  assert.throws(() => getImporter('brat'), /unknown import format "brat"/);
});

test('bc5cdr --task keeps one task', { skip }, async () => {
  const { c } = await run('bc5cdr', C('bc5cdr', 'CDR_sample.txt'), { task: 'influences' });
  assert.deepEqual(c.byTask, { influences: 50 });
  await assert.rejects(
    run('bc5cdr', C('bc5cdr', 'CDR_sample.txt'), { task: 'qa' }),
    (e: unknown) =>
      e instanceof MedloraError &&
      e.field === 'task' &&
      /task must be chemicals, diseases or influences/.test(e.message),
  );
});

// medlora's own CSV and XML readers (src/data/import/csv.ts, xml.ts) against maintained parsers used as independent
// references (csv-parse, saxes; devDependencies only): the same rows / element trees on the real corpora in
// ../shared/corpora and on hand-written edge cases (quoted newlines, doubled quotes, CRLF, entities, CDATA, attributes
// in any order). The readers are kept because they agree everywhere here and also name file:line in their errors
// (CONTRIBUTING.md records the decision); this test is what would show otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as csvParse } from 'csv-parse/sync';
import { SaxesParser } from 'saxes';
import { parseCsv } from '../../src/data/import/csv.js';
import { parseXml, type XmlElement } from '../../src/data/import/xml.js';
import { sharedPath, hasShared } from '../../src/util/paths.js';

/** csv-parse's rows, as strings, RFC 4180 (the same dialect parseCsv documents). */
function referenceCsv(text: string): string[][] {
  return csvParse(text, { relax_column_count: true, skip_empty_lines: true }) as string[][];
}

/** The element tree saxes builds, in parseXml's shape (name, attributes, direct text incl. CDATA, children). */
function referenceXml(text: string): XmlElement {
  const p = new SaxesParser();
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  p.on('opentag', (t) => {
    const el: XmlElement = {
      name: t.name,
      attrs: { ...(t.attributes as Record<string, string>) },
      children: [],
      text: '',
      line: 0,
    };
    if (stack.length) stack[stack.length - 1]!.children.push(el);
    else root = el;
    stack.push(el);
  });
  p.on('text', (s) => {
    if (stack.length) stack[stack.length - 1]!.text += s;
  });
  p.on('cdata', (s) => {
    if (stack.length) stack[stack.length - 1]!.text += s;
  });
  p.on('closetag', () => void stack.pop());
  p.on('error', (e) => {
    throw e;
  });
  p.write(text).close();
  if (!root) throw new Error('no root');
  return root;
}

/** An element tree without line numbers, for comparison. */
function strip(e: XmlElement): unknown {
  return { name: e.name, attrs: e.attrs, text: e.text, children: e.children.map(strip) };
}

const CSV_CASES: Record<string, string> = {
  'quoted newline and doubled quotes': 'a,b,c\n"line one\nline two","say ""hi""",x\n',
  CRLF: 'a,b\r\n1,2\r\n"3\r\n4",5\r\n',
  'empty fields and trailing empty field': 'a,b,c\n,,\n1,,3\n4,5,\n',
  'no final newline': 'a,b\n1,2',
  'quoted separators': 'a,b\n"1,5","x,y,z"\n',
  'unicode and BOM-less text': 'drug,effect\nacétaminophène,"nausée, vomissements"\n',
};

const XML_CASES: Record<string, string> = {
  'predefined and numeric entities': '<r a="x &amp; y &lt; z &#233; &#x41;">t &gt; u &quot;q&quot; &apos;s&apos;</r>',
  CDATA: '<r><![CDATA[a < b && c]]> tail</r>',
  'attributes in any order and both quote styles': `<r><e id='1' type="mechanism" text="a"/><e text='b' id="2"/></r>`,
  'declaration, comments, nested elements':
    '<?xml version="1.0" encoding="UTF-8"?>\n<!-- c --><doc><s id="s0"><e/>x<e/>y</s></doc>',
  'whitespace in attribute values is normalised': '<r a="one\ttwo\nthree"/>',
};

for (const [name, text] of Object.entries(CSV_CASES)) {
  test(`CSV edge case equals csv-parse: ${name}`, () => {
    assert.deepEqual(
      parseCsv(text, 'case.csv').map((r) => r.cells),
      referenceCsv(text),
    );
  });
}

for (const [name, text] of Object.entries(XML_CASES)) {
  test(`XML edge case equals saxes: ${name}`, () => {
    assert.deepEqual(strip(parseXml(text, 'case.xml')), strip(referenceXml(text)));
  });
}

test('the differential check can fail: a different tree is caught', () => {
  assert.notDeepEqual(strip(parseXml('<r a="1"/>', 'x.xml')), strip(referenceXml('<r a="2"/>')));
  assert.notDeepEqual(
    parseCsv('a,"b ""c"""\n', 'x.csv').map((r) => r.cells),
    referenceCsv('a,"b c"\n'),
  );
});

test('DrugBank interaction CSVs: every row equals csv-parse', { skip: !hasShared() && 'no ../shared' }, () => {
  const dir = sharedPath('corpora', 'drugbank-ddi-sentences');
  let rows = 0;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.csv'))) {
    const text = readFileSync(join(dir, f), 'utf8');
    const ours = parseCsv(text, f).map((r) => r.cells);
    assert.deepEqual(ours, referenceCsv(text), f);
    rows += ours.length;
  }
  console.log(`  ${rows} rows identical`);
  assert.ok(rows > 1000);
});

test('DDI 2013 corpus: every XML file gives the same tree as saxes', { skip: !hasShared() && 'no ../shared' }, () => {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.endsWith('.xml')) files.push(p);
    }
  };
  walk(sharedPath('corpora', 'ddi2013'));
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    assert.deepEqual(strip(parseXml(text, f)), strip(referenceXml(text)), f);
  }
  console.log(`  ${files.length} files identical`);
  assert.ok(files.length > 100);
});

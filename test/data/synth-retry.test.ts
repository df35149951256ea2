// data synth's retry policy and input checks without a server: an injected fetch fails with 503 / 429 / a network
// error before answering (retried with exponential backoff), a 400 is not retried, de-duplication and the slots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { synthesize } from '../../src/data/synth/synth.js';
import { fillTemplate, readDrugs, readTemplate } from '../../src/data/synth/inputs.js';

const work = mkdtempSync(join(tmpdir(), 'medlora-synth-unit-'));
writeFileSync(join(work, 't.txt'), 'Reports for [DRUG NAME]: [DRUG SIDE EFFECTS]. Again [DRUG NAME].');
writeFileSync(join(work, 'd.jsonl'), '{"drug": "Abilify", "info": "nausea"}\n');
const template = readTemplate(join(work, 't.txt'));
const drugs = readDrugs(join(work, 'd.jsonl'));

const answer = (reports: unknown[]): Response =>
  new Response(
    JSON.stringify({ choices: [{ message: { role: 'assistant', content: JSON.stringify({ reports }) } }] }),
    { status: 200 },
  );
const report = (input: string) => ({ input, output: { drug_name: 'Abilify', adverse_events: ['nausea'] } });

test('template slots are filled everywhere; a template without a slot is refused', () => {
  assert.equal(fillTemplate(template, drugs[0]!), 'Reports for Abilify: nausea. Again Abilify.');
  writeFileSync(join(work, 'bad.txt'), 'no slots here');
  assert.throws(() => readTemplate(join(work, 'bad.txt')), /no \[DRUG NAME\] slot/);
  writeFileSync(join(work, 'bad.jsonl'), '{"drug": "X"}\n');
  assert.throws(() => readDrugs(join(work, 'bad.jsonl')), /bad\.jsonl:1: "info"/);
});

test('503, 429 and network errors are retried with doubling delays; duplicates and invalid reports are dropped', async () => {
  const calls: number[] = [];
  const failures: Array<() => Response> = [
    () => new Response('busy', { status: 503 }),
    () => new Response('slow down', { status: 429 }),
    () => {
      throw new TypeError('fetch failed');
    },
  ];
  const f = (async () => {
    calls.push(performance.now());
    const next = failures.shift();
    if (next) return next();
    return answer([
      report('I felt sick on Abilify.'),
      report('  i felt SICK on abilify. '),
      report('   '),
      { input: 'x', output: { drug_name: 'Other', adverse_events: ['a'] } },
    ]);
  }) as unknown as typeof fetch;
  const s = await synthesize({
    template,
    drugs,
    endpoint: 'http://127.0.0.1:1/v1',
    model: 'm',
    out: join(work, 'o.json'),
    journal: join(work, 'o.journal'),
    fetch: f,
    backoffMs: 20,
    retries: 5,
  });
  assert.equal(calls.length, 4);
  assert.equal(s.retries, 3);
  const gaps = calls.slice(1).map((t, i) => t - calls[i]!);
  console.log(`retry gaps: ${gaps.map((g) => g.toFixed(0)).join(', ')} ms (backoff 20, 40, 80)`);
  gaps.forEach((g, i) => assert.ok(g >= 20 * 2 ** i - 2, `gap ${i} ${g} ms >= ${20 * 2 ** i}`));
  assert.equal(s.records, 1);
  assert.equal(s.duplicates, 1);
  assert.equal(s.invalid, 2, 'a blank input and a wrong drug_name');
  const recs = JSON.parse(readFileSync(join(work, 'o.json'), 'utf8')) as Array<{
    provenance: { template_sha256: string; seed: number };
  }>;
  assert.equal(recs[0]!.provenance.template_sha256, template.sha256);
});

test("a 400 is not retried and stops the run with the server's message", async () => {
  let n = 0;
  const f = (async () => {
    n++;
    return new Response('{"error": {"message": "max_tokens: too small"}}', { status: 400 });
  }) as unknown as typeof fetch;
  await assert.rejects(
    synthesize({
      template,
      drugs,
      endpoint: 'http://127.0.0.1:1/v1',
      model: 'm',
      out: join(work, 'p.json'),
      journal: join(work, 'p.journal'),
      fetch: f,
      backoffMs: 1,
    }),
    /HTTP 400: .*too small/,
  );
  assert.equal(n, 1);
});

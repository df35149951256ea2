// The Modelfile TEMPLATE checked against the real Go text/template: test/fixtures/ollama/rendered.json holds what Go
// (render.go, with Ollama's chat semantics: collate, .Messages, .System) renders from the TEMPLATE medlora writes for
// Llama-3, Mistral, Qwen2, ChatML, SmolLM2 and StableLM-Zephyr chat templates; here that rendering, behind the BOS
// llama.cpp adds, must equal the prompt medlora's Jinja chat template gives, character for character. Ollama itself is
// not run (not installable here): its template engine is Go's text/template, which is what rendered the fixture.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { skipNoShared } from '../model/fixtures.js';
import { ollamaCases, type OllamaCase } from './ollama-cases.js';

interface Rendered {
  name: string;
  template: string;
  rendered: string[];
}

const fixture = (): Map<string, Rendered> =>
  new Map(
    (
      JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'ollama', 'rendered.json'), 'utf8')) as Rendered[]
    ).map((r) => [r.name, r]),
  );

function goRendering(fx: Map<string, Rendered>, c: OllamaCase, name = c.name): Rendered {
  const r = fx.get(name);
  assert.ok(r, `${name}: not in rendered.json (run sh test/fixtures/ollama/make_rendered.sh)`);
  assert.equal(
    r.template,
    c.template,
    `${name}: the TEMPLATE medlora writes changed since rendered.json was made: run sh test/fixtures/ollama/make_rendered.sh (needs Go)`,
  );
  assert.equal(r.rendered.length, c.conversations.length);
  return r;
}

function firstDiff(a: string, b: string): string {
  if (a === b) return 'identical';
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `differ at char ${i}: ${JSON.stringify(a.slice(i, i + 30))} vs ${JSON.stringify(b.slice(i, i + 30))}`;
}

test(
  "Ollama TEMPLATE rendered by Go's text/template equals medlora's Jinja chat prompt (system, multi-turn, generation prompt)",
  { skip: skipNoShared },
  () => {
    const fx = fixture();
    let checked = 0;
    for (const c of ollamaCases()) {
      const r = goRendering(fx, c);
      c.conversations.forEach((conv, i) => {
        const ollama = c.bos + r.rendered[i]!;
        console.log(
          `  ${c.name} conversation ${i} (${conv.map((m) => m.role[0]).join('')}): ${firstDiff(ollama, c.jinja[i]!)}`,
        );
        assert.equal(ollama, c.jinja[i], `${c.name} conversation ${i}`);
        checked++;
      });
      // a template without a system role drops system messages in Ollama: said in the warning, never silent
      if (c.name === 'mistral') assert.match(c.warning ?? '', /no system role .* the TEMPLATE drops them/);
    }
    assert.ok(checked >= 20, `${checked} renderings`);
  },
);

test(
  'Ollama TEMPLATE on content with surrounding whitespace: equal to the Jinja prompt exactly when no warning says otherwise (Llama-3 trims)',
  { skip: skipNoShared },
  () => {
    const fx = fixture();
    const differing: string[] = [];
    for (const c of ollamaCases({ padded: true })) {
      const r = goRendering(fx, c, `${c.name}-padded`);
      const same = c.conversations.every((_, i) => c.bos + r.rendered[i]! === c.jinja[i]);
      const warned = /changes message content/.test(c.warning ?? '');
      console.log(`  ${c.name}: ${same ? 'identical' : 'differs'}; content warning ${warned ? 'yes' : 'no'}`);
      assert.equal(same, !warned, `${c.name}: rendering ${same ? 'matches' : 'differs'} but warning ${warned}`);
      if (!same) differing.push(c.name);
    }
    assert.deepEqual(differing, ['llama3'], 'the Llama-3 template trims content ({{ ... | trim }})');
  },
);

test(
  'the TEMPLATE check can fail: the ChatML TEMPLATE rendered by Go is not the Qwen2 prompt (no default system)',
  {
    skip: skipNoShared,
  },
  () => {
    const fx = fixture();
    const cases = new Map(ollamaCases().map((c) => [c.name, c]));
    const qwen = cases.get('qwen2')!;
    const chatml = goRendering(fx, cases.get('chatml')!);
    const mismatches = qwen.conversations.filter((_, i) => qwen.bos + chatml.rendered[i]! !== qwen.jinja[i]).length;
    console.log(
      `  ChatML rendering vs Qwen2 prompt: ${mismatches} of ${qwen.conversations.length} conversations differ`,
    );
    assert.ok(mismatches >= 2);
  },
);

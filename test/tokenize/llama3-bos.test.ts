// Llama-3 tiktoken tokenizer.model: BOS as the current upstream tokenizer.json adds it (see from-vocab.ts for the
// sources): ids published from the real Meta-Llama-3 tokenizers, the Llama-3.2-1B oracle, and add_bos_token=false.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { hasShared, sharedPath } from '../../src/util/paths.js';

const skip = hasShared() ? false : 'no ../shared fixtures';
const dir = (): string => sharedPath('fixtures', 'hf', 'Meta-Llama-3-8B-Instruct');

test('Llama-3 tokenizer.model prepends <|begin_of_text|> (128000) like the upstream tokenizer.json', { skip }, () => {
  const tok = loadTokenizer(dir());
  assert.equal(tok.addsBos, true);
  // transformers issue #30947 (meta-llama/Meta-Llama-3-8B) and datawhalechina/self-llm issue #140 (Meta-Llama-3-8B-Instruct)
  assert.deepEqual(tok.encode('hi, how are you today?'), [128000, 6151, 11, 1268, 527, 499, 3432, 30]);
  assert.deepEqual(tok.encode('You are so cute!'), [128000, 2675, 527, 779, 19369, 0]);
  assert.deepEqual(tok.encode('You are so cute!', { addSpecialTokens: false }), [2675, 527, 779, 19369, 0]);
  // the tokenizers-library oracle over the Llama-3.2-1B tokenizer.json (same ranks and specials)
  const ref = JSON.parse(
    readFileSync(sharedPath('fixtures', 'hf', 'generated-reference-encodings', 'reference_encodings.json'), 'utf8'),
  ) as { models: Record<string, { cases: Array<{ text: string; with_special: { ids: number[] } }> }> };
  let n = 0;
  for (const c of ref.models['Llama-3.2-1B']!.cases) {
    assert.deepEqual(tok.encode(c.text), c.with_special.ids, JSON.stringify(c.text));
    n++;
  }
  console.log(`  ${n} oracle strings equal with special tokens (BOS first)`);
});

test(
  'add_bos_token=false in tokenizer_config.json removes the BOS (transformers 5 rebuilds the post-processor)',
  { skip },
  () => {
    const d = mkdtempSync(join(tmpdir(), 'medlora-l3bos-'));
    try {
      copyFileSync(join(dir(), 'tokenizer.model'), join(d, 'tokenizer.model'));
      const cfg = JSON.parse(readFileSync(join(dir(), 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ ...cfg, add_bos_token: false }));
      const tok = loadTokenizer(d);
      assert.equal(tok.addsBos, false);
      assert.deepEqual(tok.encode('You are so cute!'), [2675, 527, 779, 19369, 0]);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  },
);

// Greedy generation from a genuinely pretrained tiny Llama (stories260K-hf): the token ids must equal the ones
// Hugging Face transformers produced (expected_generation.json), with and without the KV cache, batched with left
// padding (the two prompts have different lengths). On MEDLORA_TEST_DEVICE (test/device.ts): ids must still be equal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateIds } from '../../src/generate/generate.js';
import { noGrad, scope, setNumThreads, tensor } from '../../src/tensor/index.js';
import { sharedPath } from '../../src/util/paths.js';
import { skipNoShared } from '../model/fixtures.js';
import { loadTestModel } from '../device.js';

// a tiny model: one engine thread is faster than two busy-waiting ones on a shared 2-core machine
setNumThreads(1);

const dir = (): string => sharedPath('fixtures', 'hf', 'stories260K-hf');
interface Expected {
  greedy: Array<{ prompt_ids: number[]; greedy_new_ids: number[]; last_logits_top5: number[]; text: string }>;
}
const expected = (): Expected => JSON.parse(readFileSync(join(dir(), 'expected_generation.json'), 'utf8')) as Expected;

/** vocab512.json pieces, for showing the text only (the ids are what is checked) */
function show(ids: number[]): string {
  const vocab = JSON.parse(readFileSync(join(dir(), 'vocab512.json'), 'utf8')) as string[];
  return ids
    .map((i) => vocab[i] ?? '?')
    .join('')
    .replace(/\u2581/g, ' ')
    .replace(/<0x0A>/g, '\n');
}

test('stories260K: top-5 next tokens after each prompt', { skip: skipNoShared }, () => {
  const m = loadTestModel(dir());
  try {
    for (const g of expected().greedy) {
      const top = scope(() => {
        const logits = noGrad(() => m.forward(tensor([g.prompt_ids], { dtype: 'i64' })));
        return logits
          .select(1, g.prompt_ids.length - 1)
          .topk(5, -1)[1]
          .toNumbers();
      });
      assert.deepEqual(top, g.last_logits_top5);
    }
  } finally {
    m.dispose();
  }
});

for (const useCache of [true, false]) {
  test(
    `stories260K: greedy ids equal transformers' ${useCache ? 'with' : 'without'} the KV cache (batch of 2, left padded)`,
    { skip: skipNoShared },
    () => {
      const m = loadTestModel(dir());
      try {
        const exp = expected().greedy;
        const n = 120;
        const r = generateIds(
          m,
          exp.map((g) => g.prompt_ids),
          { maxNewTokens: n, eosIds: [], useCache },
        );
        r.forEach((x, i) => {
          console.log(`  prompt ${i}: ${JSON.stringify(show(x.ids).slice(0, 80))}...`);
          assert.deepEqual(x.ids, exp[i]!.greedy_new_ids.slice(0, n));
          assert.equal(x.finishReason, 'length');
        });
      } finally {
        m.dispose();
      }
    },
  );
}

test('stories260K: each prompt alone gives the same ids as the batch', { skip: skipNoShared }, () => {
  const m = loadTestModel(dir());
  try {
    const exp = expected().greedy;
    for (const g of exp) {
      const [r] = generateIds(m, [g.prompt_ids], { maxNewTokens: 30, eosIds: [] });
      assert.deepEqual(r!.ids, g.greedy_new_ids.slice(0, 30));
    }
  } finally {
    m.dispose();
  }
});

test('stories260K: EOS stops a sequence (EOS = the 5th greedy token here)', { skip: skipNoShared }, () => {
  const m = loadTestModel(dir());
  try {
    const g = expected().greedy[0]!;
    const stopAt = g.greedy_new_ids[4]!;
    const first = g.greedy_new_ids.indexOf(stopAt);
    const [r] = generateIds(m, [g.prompt_ids], { maxNewTokens: 50, eosIds: [stopAt] });
    assert.equal(r!.finishReason, 'eos');
    assert.deepEqual(r!.ids, g.greedy_new_ids.slice(0, first));
  } finally {
    m.dispose();
  }
});

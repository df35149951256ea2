// generate() with a tokenizer on a tiny model: stop strings, repetition penalty, seeded sampling, the constraint
// hook (plain masks and the task constraints of src/generate/constraints), and bad options. The model is the gpt2-tiny
// reference checkpoint (vocab 320) with a byte-level BPE tokenizer trained here to fit that vocabulary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/model/load.js';
import { generate, generateIds } from '../../src/generate/generate.js';
import { sessionsConstraint } from '../../src/generate/constrain.js';
import { ConstrainedSession, taskConstraint } from '../../src/generate/constraints/index.js';
import { trainBpe, writeTrainedTokenizer } from '../../src/tokenize/bpe-train.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { parseOutput } from '../../src/infer/parse.js';
import { MedloraError } from '../../src/util/errors.js';
import { setNumThreads } from '../../src/tensor/index.js';
import { refDir, skipNoShared } from '../model/fixtures.js';

// a tiny model: one engine thread beats two busy-waiting ones on a shared 2-core machine
setNumThreads(1);

function setup(): { dir: string; model: ReturnType<typeof loadModel>; tok: ReturnType<typeof loadTokenizer> } {
  const dir = mkdtempSync(join(tmpdir(), 'medlora-gen-'));
  copyFileSync(join(refDir('gpt2-tiny'), 'config.json'), join(dir, 'config.json'));
  copyFileSync(join(refDir('gpt2-tiny'), 'model.safetensors'), join(dir, 'model.safetensors'));
  const texts = [
    'aspirin causes bleeding',
    'warfarin interacts with aspirin',
    'the patient took ibuprofen and paracetamol',
  ];
  writeTrainedTokenizer(dir, trainBpe(texts, { vocabSize: 300, minFrequency: 1 }));
  return { dir, model: loadModel(dir), tok: loadTokenizer(dir) };
}

test(
  'stop strings cut the text and end the sequence; repetition penalty and sampling change the output',
  { skip: skipNoShared },
  () => {
    const { dir, model, tok } = setup();
    try {
      assert.ok(tok.vocabSize <= model.config.vocab_size);
      const base = generate(model, tok, ['aspirin'], { maxNewTokens: 24, eosIds: [] })[0]!;
      assert.equal(base.ids.length, 24);
      assert.equal(base.finishReason, 'length');
      assert.equal(base.text, tok.decode(base.ids, { skipSpecialTokens: true }));
      // a stop string taken from the middle of the greedy text
      const stop = base.text.slice(6, 9);
      const cut = base.text.indexOf(stop);
      const s = generate(model, tok, ['aspirin'], { maxNewTokens: 24, eosIds: [], stopStrings: [stop] })[0]!;
      assert.equal(s.finishReason, 'stop');
      assert.equal(s.text, base.text.slice(0, cut));
      assert.ok(s.ids.length < 24 && s.ids.every((id, i) => id === base.ids[i]));
      // repetition penalty: the greedy text of a random model repeats; a strong penalty changes it
      const r = generate(model, tok, ['aspirin'], { maxNewTokens: 24, eosIds: [], repetitionPenalty: 5 })[0]!;
      assert.notDeepEqual(r.ids, base.ids);
      // sampling: reproducible per seed
      const a1 = generate(model, tok, ['aspirin'], { maxNewTokens: 16, eosIds: [], temperature: 1, seed: 5 })[0]!;
      const a2 = generate(model, tok, ['aspirin'], { maxNewTokens: 16, eosIds: [], temperature: 1, seed: 5 })[0]!;
      const a3 = generate(model, tok, ['aspirin'], { maxNewTokens: 16, eosIds: [], temperature: 1, seed: 6 })[0]!;
      assert.deepEqual(a1.ids, a2.ids);
      assert.notDeepEqual(a1.ids, a3.ids);
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'constraint hook: only allowed ids are generated; EOS when allowed and best; progress per batch',
  { skip: skipNoShared },
  () => {
    const { dir, model, tok } = setup();
    try {
      const allowed = new Uint8Array(tok.vocabSize);
      for (const id of [100, 120, 140]) allowed[id] = 1;
      const calls: Array<[number, number]> = [];
      const progress: number[] = [];
      const res = generateIds(
        model,
        [
          [1, 2, 3],
          [4, 5],
        ],
        {
          maxNewTokens: 10,
          eosIds: [7],
          batchSize: 1,
          onProgress: (d) => progress.push(d),
          constraint: (seq, gen) => {
            calls.push([seq, gen.length]);
            return { allowed, eosAllowed: false };
          },
        },
      );
      for (const r of res)
        assert.ok(
          r.ids.every((id) => [100, 120, 140].includes(id)),
          `ids ${r.ids}`,
        );
      assert.deepEqual(progress, [1, 2]);
      assert.deepEqual(
        calls.filter(([s]) => s === 1).map(([, n]) => n),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      // nothing allowed but EOS: the sequence ends at once
      const none = generateIds(model, [[1, 2, 3]], {
        maxNewTokens: 10,
        eosIds: [7],
        constraint: () => ({ allowed: new Uint8Array(tok.vocabSize), eosAllowed: true }),
      });
      assert.deepEqual(none[0], { ids: [], finishReason: 'eos', truncated: false });
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'task constraint sessions (src/generate/constraints) make a random model write a parseable answer',
  { skip: skipNoShared },
  () => {
    const { dir, model, tok } = setup();
    try {
      const c = taskConstraint('chemicals', tok, { maxItems: 3, maxFieldBytes: 8 });
      const budget = 40;
      const sessions = [new ConstrainedSession(c, budget), new ConstrainedSession(c, budget)];
      const res = generate(model, tok, ['aspirin', 'warfarin interacts'], {
        maxNewTokens: budget,
        constraint: sessionsConstraint(sessions),
        temperature: 1,
        seed: 3,
      });
      for (const r of res) {
        console.log(`  ${JSON.stringify(r.text)} (${r.finishReason})`);
        assert.equal(r.finishReason, 'eos');
        assert.deepEqual(parseOutput('chemicals', r.text).unparsed, []);
      }
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('bad generation options and prompts are clear errors', { skip: skipNoShared }, () => {
  const { dir, model, tok } = setup();
  try {
    const bad: Array<[() => unknown, RegExp]> = [
      [() => generateIds(model, [[]], { maxNewTokens: 3 }), /prompt 0 is empty/],
      [() => generateIds(model, [[1, 999]], { maxNewTokens: 3 }), /token id 999 outside the vocabulary \[0, 320\)/],
      [() => generateIds(model, [[1]], { maxNewTokens: -1 }), /maxNewTokens must be a non-negative integer/],
      [() => generateIds(model, [[1]], { maxNewTokens: 3, topP: 0 }), /top-p must be in \(0, 1\]/],
      [() => generateIds(model, [[1]], { maxNewTokens: 3, temperature: -1 }), /temperature must be >= 0/],
      [() => generateIds(model, [[1]], { maxNewTokens: 3, topK: 1.5 }), /top-k must be a non-negative integer/],
      [() => generateIds(model, [[1]], { maxNewTokens: 3, stopStrings: ['x'] }), /stop strings need a tokenizer/],
      [() => generate(model, tok, ['x'], { maxNewTokens: 3, repetitionPenalty: 0 }), /repetition penalty must be > 0/],
    ];
    for (const [fn, re] of bad) assert.throws(fn, (e: unknown) => e instanceof MedloraError && re.test(e.message));
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Prompt building, tokenization with the loss mask, truncation and padding on REAL tokenizers from
// ../shared/fixtures/hf (via the test adapter). Expected ids come from encoding the pieces directly with
// @huggingface/tokenizers, never from the code under test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { collate, encodeAll, encodeRecord, IGNORE_INDEX, type EncodedExample } from '../../src/data/encode.js';
import { alpacaPrompt } from '../../src/data/prompt.js';
import { previewExample, renderPreview } from '../../src/data/preview.js';
import type { MedRecord } from '../../src/data/schema.js';
import { TASKS } from '../../src/data/tasks.js';

const skip = hasShared() ? false : 'no ../shared fixtures (hasShared() is false)';
const HF = (m: string): string => sharedPath('fixtures', 'hf', m);

const ddi: MedRecord = {
  id: 'hand-1',
  task: 'ddi-triplets',
  input: 'Aspirin may increase the anticoagulant activities of Warfarin.',
  gold: [{ head: 'Aspirin', relation: 'may increase the anticoagulant activities of', tail: 'Warfarin' }],
};
const ade: MedRecord = {
  id: 'hand-2',
  task: 'ade-email',
  input: 'Message: after Abilify I feel nausea.',
  gold: { drug_name: 'Abilify', adverse_events: ['nausea'] },
};

test('rendered targets follow the documented line formats', () => {
  assert.equal(
    TASKS['ddi-triplets'].render([
      { head: 'A', relation: 'r', tail: 'B' },
      { head: 'A', relation: 'r', tail: 'B' },
      { head: 'C', relation: 's', tail: 'D' },
    ]),
    '<A, r, B>\n<C, s, D>',
  );
  assert.equal(TASKS['ddi-triplets'].render([]), 'none');
  assert.equal(TASKS.chemicals.render(['x', 'y']), '- x\n- y');
  assert.equal(TASKS['drug-ae'].render([{ head: 'd', tail: 'e' }]), 'd | e');
  assert.equal(
    TASKS['ade-email'].render({ drug_name: 'Abilify', adverse_events: ['nausea', 'vomiting'] }),
    '{"drug_name":"Abilify","adverse_events":["nausea","vomiting"]}',
  );
  assert.throws(() => TASKS.chemicals.render(['a\nb']), /may not contain a line break/);
});

test('alpaca prompt text (Stanford Alpaca template, written out)', () => {
  assert.equal(
    alpacaPrompt('Do X.', 'some text'),
    'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nDo X.\n\n### Input:\nsome text\n\n### Response:\n',
  );
  assert.equal(
    alpacaPrompt('Q?', ''),
    'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nQ?\n\n### Response:\n',
  );
  assert.ok(alpacaPrompt('$& i', '$1').includes('$& i') && alpacaPrompt('i', '$1').includes('\n$1\n'));
});

for (const model of ['SmolLM2-135M-Instruct', 'Mistral-7B-v0.1', 'gpt2', 'Llama-2-70b-chat-hf']) {
  test(`${model}: labels are -100 exactly on the prompt; the trained ids are the target's ids + EOS`, { skip }, () => {
    const tok = loadTokenizer(HF(model));
    for (const r of [ddi, ade]) {
      const res = encodeRecord(r, tok, { style: 'alpaca' });
      assert.ok(res.ok);
      const e = res.example;
      const target = TASKS[r.task].render(r.gold as never);
      // independent expectation: encode the two texts on their own
      const expTarget = [...tok.encode(target, { addSpecialTokens: false }), tok.eosId!];
      const expPrompt = tok.encode(alpacaPrompt(TASKS[r.task].instruction, r.input), { addSpecialTokens: true });
      assert.deepEqual(e.input_ids, [...expPrompt, ...expTarget]);
      assert.deepEqual(e.labels, [...expPrompt.map(() => IGNORE_INDEX), ...expTarget]);
      // BOS exactly once, at position 0, iff the tokenizer adds one
      const bosCount = e.input_ids.filter((id) => id === tok.bosId).length;
      assert.equal(bosCount, tok.addsBos ? 1 : tok.bosId === tok.eosId ? 1 : 0);
      if (tok.addsBos) assert.equal(e.input_ids[0], tok.bosId);
      // preview: the trained text decodes to exactly the target plus the EOS token
      const p = previewExample(e, tok);
      assert.equal(p.trainedTokens, expTarget.length);
      assert.equal(
        p.tokens
          .filter((t) => t.trained)
          .map((t) => t.index)
          .join(','),
        expTarget.map((_, i) => expPrompt.length + i).join(','),
      );
      assert.equal(p.trainedText.replace(/^ /, ''), `${target}${tok.eosToken}`);
      assert.match(renderPreview(p, false), /trained text: /);
    }
  });
}

test('SmolLM2 chat template: prompt ends with the assistant header; EOS <|im_end|> closes the answer', { skip }, () => {
  const tok = loadTokenizer(HF('SmolLM2-135M-Instruct'));
  const res = encodeRecord(ddi, tok, { style: 'chat' });
  assert.ok(res.ok);
  const e = res.example;
  const promptText = tok.decode(e.input_ids.slice(0, e.promptLength));
  assert.ok(promptText.endsWith('<|im_start|>assistant\n'), promptText);
  assert.ok(promptText.includes(`${TASKS['ddi-triplets'].instruction}\n\n${ddi.input}`));
  assert.equal(
    tok.decode(e.input_ids.slice(e.promptLength)),
    '<Aspirin, may increase the anticoagulant activities of, Warfarin><|im_end|>',
  );
  assert.throws(() => encodeRecord(ddi, loadTokenizer(HF('gpt2')), { style: 'chat' }), /no chat_template/);
});

test('truncation cuts the input, never the target; too-long targets are dropped or reported', { skip }, () => {
  const tok = loadTokenizer(HF('gpt2'));
  const long: MedRecord = {
    ...ddi,
    id: 'long',
    input: `${'The patient took many drugs. '.repeat(40)}Aspirin may increase the anticoagulant activities of Warfarin.`,
  };
  const full = encodeRecord(long, tok, { style: 'alpaca' });
  assert.ok(full.ok);
  const tgtLen = full.example.input_ids.length - full.example.promptLength;
  const cut = encodeRecord(long, tok, { style: 'alpaca', maxLength: 120 });
  assert.ok(cut.ok);
  assert.ok(cut.example.truncated);
  assert.ok(cut.example.input_ids.length <= 120, `length ${cut.example.input_ids.length}`);
  // the target + EOS tail is intact
  assert.deepEqual(cut.example.input_ids.slice(-tgtLen), full.example.input_ids.slice(-tgtLen));
  assert.equal(cut.example.input_ids.length - cut.example.promptLength, tgtLen);
  // the truncated prompt still ends with the response header
  assert.ok(tok.decode(cut.example.input_ids.slice(0, cut.example.promptLength)).endsWith('### Response:\n'));
  // a max_length below target + bare prompt: dropped by default, error on request (naming the record)
  const drop = encodeRecord(long, tok, { style: 'alpaca', maxLength: 40 });
  assert.equal(drop.ok, false);
  assert.throws(
    () => encodeRecord(long, tok, { style: 'alpaca', maxLength: 40, overflow: 'error' }),
    /record long: target \(\d+ tokens with EOS\)/,
  );
  // a record that fits is not marked truncated
  const fits = encodeRecord(ddi, tok, { style: 'alpaca', maxLength: 400 });
  assert.ok(fits.ok && !fits.example.truncated);
});

test('collate pads to the longest with pad id / -100 / 0, on either side', () => {
  const a: EncodedExample = { id: 'a', input_ids: [5, 6, 7], labels: [-100, 6, 7], promptLength: 1, truncated: false };
  const b: EncodedExample = { id: 'b', input_ids: [8], labels: [8], promptLength: 0, truncated: false };
  assert.deepEqual(collate([a, b], 0, 'right'), {
    input_ids: [
      [5, 6, 7],
      [8, 0, 0],
    ],
    labels: [
      [-100, 6, 7],
      [8, -100, -100],
    ],
    attention_mask: [
      [1, 1, 1],
      [1, 0, 0],
    ],
  });
  assert.deepEqual(collate([a, b], 2, 'left'), {
    input_ids: [
      [5, 6, 7],
      [2, 2, 8],
    ],
    labels: [
      [-100, 6, 7],
      [-100, -100, 8],
    ],
    attention_mask: [
      [1, 1, 1],
      [0, 0, 1],
    ],
  });
  assert.throws(() => collate([], 0), /empty batch/);
  assert.throws(() => collate([a], -1), /pad id/);
});

void join;

test('encodeAll counts dropped and truncated records', { skip }, () => {
  const tok = loadTokenizer(HF('gpt2'));
  const long: MedRecord = { ...ddi, id: 'long', input: 'word '.repeat(300) };
  const full = encodeRecord(ddi, tok, { style: 'alpaca' });
  assert.ok(full.ok);
  // max_length = exactly the short record's length: it fits untouched, the long one is cut
  const rep = encodeAll([ddi, long, { ...ddi, id: 'tiny' }], tok, {
    style: 'alpaca',
    maxLength: full.example.input_ids.length,
  });
  assert.deepEqual(
    rep.examples.map((e) => e.id),
    ['hand-1', 'long', 'tiny'],
  );
  assert.equal(rep.truncated, 1);
  const rep2 = encodeAll([ddi], tok, { style: 'alpaca', maxLength: 30 });
  assert.equal(rep2.examples.length, 0);
  assert.equal(rep2.dropped[0]!.id, 'hand-1');
});

test(
  'Mistral-Instruct chat template that writes {{ bos_token }}: BOS exactly once, at the start',
  { skip },
  async () => {
    const { readFileSync } = await import('node:fs');
    const tpl = (
      JSON.parse(readFileSync(sharedPath('fixtures', 'hf', 'chat-templates', 'mistral.json'), 'utf8')) as {
        chat_template: string;
      }
    ).chat_template;
    const tok = loadTokenizer(HF('Mistral-7B-v0.1'), { chatTemplate: tpl });
    const res = encodeRecord(ddi, tok, { style: 'chat' });
    assert.ok(res.ok);
    const e = res.example;
    assert.equal(e.input_ids[0], tok.bosId);
    assert.equal(e.input_ids.filter((id) => id === tok.bosId).length, 1);
    assert.ok(tok.decode(e.input_ids.slice(0, e.promptLength)).endsWith('[/INST]'));
    assert.deepEqual(e.input_ids.slice(e.promptLength), [
      ...tok.encode(TASKS['ddi-triplets'].render(ddi.gold as never), { addSpecialTokens: false }),
      tok.eosId!,
    ]);
  },
);

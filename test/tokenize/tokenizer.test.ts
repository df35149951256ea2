// Fixture tests for loadTokenizer: encodings vs the generated HF-tokenizers oracle and the independent
// swift-transformers vectors, decode round trips, special ids vs the config files, chat templates, and error paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { loadTokenizer, renderChatTemplate, type LoadedTokenizer } from '../../src/tokenize/tokenizer.js';
import { MedloraError } from '../../src/util/errors.js';

const skip = hasShared() ? false : 'no ../shared fixtures';
const hf = (...p: string[]): string => sharedPath('fixtures', 'hf', ...p);

interface Enc {
  ids: number[];
  tokens: string[];
}
interface RefCase {
  text: string;
  no_special: Enc;
  with_special: Enc;
  decoded_no_special: string;
}
interface RefModel {
  tokenizer_file: string;
  vocab_size_with_added: number;
  cases: RefCase[];
}

function refModels(): Record<string, RefModel> {
  const j = JSON.parse(readFileSync(hf('generated-reference-encodings', 'reference_encodings.json'), 'utf8')) as {
    models: Record<string, RefModel>;
  };
  return j.models;
}

// loading a 50k-150k vocabulary takes ~0.3-1 s; load each fixture folder once per file
const loaded = new Map<string, LoadedTokenizer>();
function load(folder: string): LoadedTokenizer {
  let t = loaded.get(folder);
  if (!t) {
    t = loadTokenizer(hf(folder));
    loaded.set(folder, t);
  }
  return t;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'medlora-tok-'));
}

test('encodings match the HF tokenizers oracle for every loadable fixture tokenizer', { skip }, () => {
  let checked = 0;
  for (const [name, m] of Object.entries(refModels())) {
    const dir = hf(m.tokenizer_file.replace(/\/tokenizer\.json$/, ''));
    const loadable = existsSync(join(dir, 'tokenizer.json')) || existsSync(join(dir, 'vocab.json'));
    if (!loadable) {
      console.log(`  ${name}: no tokenizer.json / vocab.json here (tiktoken only), skipped`);
      continue;
    }
    const tok = load(m.tokenizer_file.replace(/\/tokenizer\.json$/, ''));
    assert.equal(tok.vocabSize, m.vocab_size_with_added, `${name} vocab size`);
    for (const c of m.cases) {
      const ns = tok.encodeWithTokens(c.text, { addSpecialTokens: false });
      assert.deepEqual(ns.ids, c.no_special.ids, `${name} ids (no special) of ${JSON.stringify(c.text)}`);
      assert.deepEqual(ns.tokens, c.no_special.tokens, `${name} tokens of ${JSON.stringify(c.text)}`);
      assert.deepEqual(
        tok.encode(c.text, { addSpecialTokens: true }),
        c.with_special.ids,
        `${name} ids (with special) of ${JSON.stringify(c.text)}`,
      );
      assert.equal(tok.decode(c.no_special.ids), c.decoded_no_special, `${name} decode of ${JSON.stringify(c.text)}`);
    }
    console.log(`  ${name} (${tok.source}): ${m.cases.length} cases ok`);
    checked++;
  }
  // gpt2, Llama-2, Mistral, Qwen2.5 (vocab.json+merges.txt), SmolLM2, stablelm, pythia
  assert.ok(checked >= 7, `only ${checked} tokenizers checked`);
});

test('Llama-3 tiktoken tokenizer.model converts to a BPE matching the HF oracle', { skip }, () => {
  // Meta-Llama-3-8B-Instruct ships tokenizer.model (tiktoken ranks) + tokenizer_config.json here, no tokenizer.json.
  // The oracle has Llama-3.2-1B (same 128000 ranks + 256 specials) and Meta-Llama-3-8B, whose early tokenizer.json
  // did not add BOS; so ids without special tokens are compared with both, ids with special tokens with Llama-3.2-1B.
  const t0 = Date.now();
  const tok = load('Meta-Llama-3-8B-Instruct');
  console.log(`  converted in ${Date.now() - t0} ms (${tok.source})`);
  const models = refModels();
  assert.equal(tok.vocabSize, models['Llama-3.2-1B']!.vocab_size_with_added);
  assert.equal(tok.bosId, 128000);
  assert.equal(tok.eosToken, '<|eot_id|>');
  assert.equal(tok.eosId, 128009);
  for (const name of ['Llama-3.2-1B', 'Meta-Llama-3-8B']) {
    for (const c of models[name]!.cases) {
      const ns = tok.encodeWithTokens(c.text, { addSpecialTokens: false });
      assert.deepEqual(ns.ids, c.no_special.ids, `${name}: ${JSON.stringify(c.text)}`);
      assert.deepEqual(ns.tokens, c.no_special.tokens, `${name}: ${JSON.stringify(c.text)}`);
      assert.equal(tok.decode(c.no_special.ids), c.decoded_no_special);
      if (name === 'Llama-3.2-1B')
        assert.deepEqual(tok.encode(c.text), c.with_special.ids, `${name} with special: ${JSON.stringify(c.text)}`);
    }
  }
  // swift-transformers' Llama-3.2 vector, and the folder's own chat template with its bos_token
  const l = JSON.parse(readFileSync(hf('tokenizer-test-vectors', 'llama_3.2_encoded.json'), 'utf8')) as {
    text: string;
    token_ids: number[];
    decoded_text: string;
  };
  assert.deepEqual(tok.encode(l.text), l.token_ids);
  assert.equal(tok.decode(l.token_ids), l.decoded_text);
  assert.equal(
    tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }),
    '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  );
});

test('swift-transformers vectors: GPT-2 and Llama-2 long texts', { skip }, () => {
  const gpt2 = load('gpt2');
  const g = JSON.parse(readFileSync(hf('tokenizer-test-vectors', 'gpt2_encoded_tokens.json'), 'utf8')) as {
    text: string;
    bpe_tokens: string[];
    token_ids: number[];
    decoded_text: string;
  };
  const ge = gpt2.encodeWithTokens(g.text, { addSpecialTokens: false });
  assert.deepEqual(ge.tokens, g.bpe_tokens);
  assert.deepEqual(ge.ids, g.token_ids);
  assert.equal(gpt2.decode(g.token_ids), g.decoded_text);

  const llama = load('Llama-2-70b-chat-hf');
  const l = JSON.parse(readFileSync(hf('tokenizer-test-vectors', 'llama_encoded.json'), 'utf8')) as {
    text: string;
    bpe_tokens: string[];
    token_ids: number[];
    decoded_text: string;
  };
  const le = llama.encodeWithTokens(l.text, { addSpecialTokens: true });
  assert.deepEqual(le.ids, l.token_ids);
  assert.equal(llama.decode(l.token_ids), l.decoded_text);
});

test('swift-transformers tokenizer_tests.json cases for distilgpt2 and Llama-2', { skip }, () => {
  type Case = {
    input: string;
    encoded: { input_ids: number[] };
    decoded_with_special: string;
    decoded_without_special: string;
  };
  const all = JSON.parse(readFileSync(hf('tokenizer-test-vectors', 'tokenizer_tests.json'), 'utf8')) as Record<
    string,
    Case[]
  >;
  const pairs: Array<[string, string]> = [
    ['distilgpt2', 'gpt2'],
    ['coreml-projects/Llama-2-7b-chat-coreml', 'Llama-2-70b-chat-hf'],
  ];
  for (const [key, folder] of pairs) {
    const tok = load(folder);
    const cases = all[key]!;
    assert.ok(cases.length > 0);
    for (const c of cases) {
      assert.deepEqual(tok.encode(c.input), c.encoded.input_ids, `${key}: ${JSON.stringify(c.input)}`);
      assert.equal(
        tok.decode(c.encoded.input_ids),
        c.decoded_with_special,
        `${key} decode: ${JSON.stringify(c.input)}`,
      );
      assert.equal(tok.decode(c.encoded.input_ids, { skipSpecialTokens: true }), c.decoded_without_special);
    }
    console.log(`  ${key}: ${cases.length} cases ok`);
  }
});

test('decode(encode(text)) round-trips for byte-level tokenizers', { skip }, () => {
  const texts = ['Warfarin + aspirin: ↑ bleeding risk (INR > 3.5)', 'naïve café — 日本語 🤖', '  x\n\ty  '];
  for (const folder of ['gpt2', 'SmolLM2-135M-Instruct', 'Qwen2.5-0.5B-Instruct', 'pythia-70m-gpt-neox-tokenizer']) {
    const tok = load(folder);
    for (const t of texts) assert.equal(tok.decode(tok.encode(t, { addSpecialTokens: false })), t, `${folder}: ${t}`);
  }
});

test('special tokens resolved from the files agree with generation_config.json', { skip }, () => {
  // Llama-2 / Mistral: bos <s>=1, eos </s>=2 (generation_config.json says bos_token_id 1, eos_token_id 2); BOS prepended
  for (const f of ['Llama-2-70b-chat-hf', 'Mistral-7B-v0.1']) {
    const t = load(f);
    assert.equal(t.bosToken, '<s>');
    assert.equal(t.bosId, 1);
    assert.equal(t.eosToken, '</s>');
    assert.equal(t.eosId, 2);
    assert.equal(t.addsBos, true);
    assert.equal(t.encode('hi')[0], 1);
    assert.deepEqual(t.eosIds, [2]);
    assert.equal(t.isSpecial(1), true);
    assert.equal(t.isSpecial(t.encode('hi', { addSpecialTokens: false })[0]!), false);
  }
  // Qwen2.5: bos_token null, eos <|im_end|>; generation_config eos_token_id [151645, 151643]
  const q = load('Qwen2.5-0.5B-Instruct');
  assert.equal(q.bosId, undefined);
  assert.equal(q.addsBos, false);
  assert.equal(q.eosToken, '<|im_end|>');
  assert.equal(q.eosId, 151645);
  assert.deepEqual(q.eosIds, [151645, 151643]);
  assert.equal(q.padToken, '<|endoftext|>');
  assert.equal(q.padId, 151643);
  // SmolLM2: bos <|im_start|>, eos = pad = <|im_end|>; generation_config says bos 1, eos 2, pad 2
  const s = load('SmolLM2-135M-Instruct');
  assert.equal(s.bosId, 1);
  assert.equal(s.eosId, 2);
  assert.equal(s.padId, 2);
  assert.equal(s.addsBos, false);
  // GPT-2 folder has no tokenizer_config.json: ids come from config.json (bos/eos 50256)
  const g = load('gpt2');
  assert.equal(g.bosId, 50256);
  assert.equal(g.eosId, 50256);
  assert.equal(g.eosToken, '<|endoftext|>');
  assert.equal(g.addsBos, false);
  assert.equal(g.padId, undefined);
  assert.equal(g.idToToken(995), 'Ġworld');
  assert.equal(g.tokenToId('Ġworld'), 995);
});

test('vocab.json + merges.txt build gives the same encodings as GPT-2 tokenizer.json', { skip }, () => {
  const d = tempDir();
  try {
    symlinkSync(hf('gpt2', 'vocab.json'), join(d, 'vocab.json'));
    symlinkSync(hf('gpt2', 'merges.txt'), join(d, 'merges.txt'));
    const fromVocab = loadTokenizer(d);
    const fromJson = load('gpt2');
    assert.equal(fromVocab.source, 'vocab.json+merges.txt');
    assert.equal(fromVocab.vocabSize, fromJson.vocabSize);
    for (const c of refModels().gpt2!.cases) {
      assert.deepEqual(fromVocab.encode(c.text), fromJson.encode(c.text), JSON.stringify(c.text));
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('chat templates render as their definitions say (written out by hand)', { skip }, () => {
  const tpl = (f: string): string =>
    (JSON.parse(readFileSync(hf('chat-templates', f), 'utf8')) as { chat_template: string }).chat_template;
  const chat = [
    { role: 'user', content: 'Does warfarin interact with aspirin?' },
    { role: 'assistant', content: 'Yes.' },
  ];

  assert.equal(
    renderChatTemplate(tpl('chatml.json'), chat, { add_generation_prompt: true }),
    '<|im_start|>user\nDoes warfarin interact with aspirin?<|im_end|>\n<|im_start|>assistant\nYes.<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(
    renderChatTemplate(tpl('llama2.json'), chat, { bos_token: '<s>', eos_token: '</s>' }),
    '<s>[INST] Does warfarin interact with aspirin? [/INST] Yes. </s>',
  );
  assert.equal(
    renderChatTemplate(tpl('llama2.json'), [{ role: 'system', content: 'Be brief.' }, ...chat], {
      bos_token: '<s>',
      eos_token: '</s>',
    }),
    '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nDoes warfarin interact with aspirin? [/INST] Yes. </s>',
  );
  assert.equal(
    renderChatTemplate(tpl('mistral.json'), chat, { bos_token: '<s>', eos_token: '</s>' }),
    '<s>[INST] Does warfarin interact with aspirin? [/INST]Yes.</s> ',
  );
  const l3 =
    '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nDoes warfarin interact with aspirin?<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\nYes.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
  assert.equal(
    renderChatTemplate(tpl('llama3.json'), chat, { bos_token: '<|begin_of_text|>', add_generation_prompt: true }),
    l3,
  );
  // the real Meta-Llama-3-8B-Instruct tokenizer_config.json template, with its own bos_token
  const cfg = JSON.parse(readFileSync(hf('Meta-Llama-3-8B-Instruct', 'tokenizer_config.json'), 'utf8')) as {
    chat_template: string;
    bos_token: string;
  };
  assert.equal(
    renderChatTemplate(cfg.chat_template, chat, { bos_token: cfg.bos_token, add_generation_prompt: true }),
    l3,
  );
  // roles that do not alternate: the template's raise_exception becomes a clear error
  assert.throws(() => renderChatTemplate(tpl('mistral.json'), [chat[1]!]), /roles must alternate/);
});

test('applyChatTemplate uses the folder template and special tokens', { skip }, () => {
  const s = load('SmolLM2-135M-Instruct');
  assert.equal(
    s.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }),
    '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
  );
  const m = load('Mistral-7B-v0.1');
  assert.equal(m.chatTemplate, undefined);
  assert.throws(() => m.applyChatTemplate([{ role: 'user', content: 'Hi' }]), /no chat template/);
});

test('clear errors: missing folder, tiktoken-only folder, bad JSON, bad decode ids', { skip }, () => {
  assert.throws(() => loadTokenizer('/nonexistent/tok'), /does not exist/);
  const d = tempDir();
  try {
    writeFileSync(join(d, 'tokenizer.model'), 'x');
    assert.throws(
      () => loadTokenizer(d),
      (e: unknown) =>
        e instanceof MedloraError && /no tokenizer\.json/.test(e.message) && /tokenizer\.model/.test(e.message),
    );
    writeFileSync(join(d, 'tokenizer.json'), '{"model": ');
    assert.throws(() => loadTokenizer(d), /tokenizer\.json: not valid JSON/);
    writeFileSync(join(d, 'tokenizer.json'), '{"version": "1.0"}');
    assert.throws(() => loadTokenizer(d), /missing "model"/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
  const g = load('gpt2');
  assert.equal(g.decode([]), '');
  assert.throws(() => g.decode([15496, 50257]), /id 50257 at position 1 is outside the vocabulary \[0, 50257\)/);
  assert.throws(() => g.decode([1.5]), /outside the vocabulary/);
});

test('a wrong bos_token in tokenizer_config.json is reported, not guessed', { skip }, () => {
  const d = tempDir();
  try {
    symlinkSync(hf('gpt2', 'tokenizer.json'), join(d, 'tokenizer.json'));
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<nope>' }));
    assert.throws(() => loadTokenizer(d), /bos_token "<nope>".*not in the vocabulary/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

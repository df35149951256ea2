// Tokenizer folders for the tokenizer-less fixture checkpoints, and the llama.cpp (node-llama-cpp) loader shared by the
// export tests. stories260K's own tokenizer (tok512.bin, llama2.c format: int32 max_len, then per token f32 score,
// int32 length, bytes) becomes a Llama-2-style tokenizer.json (SentencePiece BPE with byte fallback; merges recovered
// as transformers' SentencePieceExtractor does: every split of a piece into two vocabulary pieces, ordered by the
// piece's score). The reference checkpoints (llama-tiny, ...) get a byte-level BPE of their vocab size.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesToUnicode } from '../../src/tokenize/bpe-train.js';
import { sharedPath } from '../../src/util/paths.js';

/** A tokenizer.json added_tokens entry for a special token (the fields tokenizers writes). */
function special(id: number, content: string): object {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

export function writeJson(path: string, v: unknown): void {
  writeFileSync(path, `${JSON.stringify(v, null, 1)}\n`);
}

/** tok512.bin -> [piece, score][] (pieces as llama2.c stores them: spaces, "\n<s>\n" for BOS). */
function readLlama2cTokenizer(path: string): Array<[string, number]> {
  const b = readFileSync(path);
  let o = 4;
  const out: Array<[string, number]> = [];
  while (o < b.length) {
    const score = b.readFloatLE(o),
      n = b.readInt32LE(o + 4);
    out.push([b.subarray(o + 8, o + 8 + n).toString('utf8'), score]);
    o += 8 + n;
  }
  return out;
}

/** A Llama-2-style tokenizer folder for stories260K-hf, from stories260K/tok512.bin. */
export function makeStoriesTokenizer(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const pieces = readLlama2cTokenizer(sharedPath('fixtures', 'hf', 'stories260K', 'tok512.bin'));
  const vocab: Record<string, number> = {};
  const score: number[] = [];
  pieces.forEach(([p, s], id) => {
    const text = id === 0 ? '<unk>' : id === 1 ? '<s>' : id === 2 ? '</s>' : p.replace(/ /g, '\u2581');
    vocab[text] = id;
    score.push(s);
  });
  const merges: Array<[string, string, number, number, number]> = [];
  for (const [piece, id] of Object.entries(vocab)) {
    if (id < 3 || /^<0x[0-9A-F]{2}>$/.test(piece)) continue;
    const chars = [...piece];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join(''),
        r = chars.slice(k).join('');
      if (vocab[l] !== undefined && vocab[r] !== undefined) merges.push([l, r, id, vocab[l]!, vocab[r]!]);
    }
  }
  merges.sort((a, b) => score[b[2]]! - score[a[2]]! || a[2] - b[2] || a[3] - b[3] || a[4] - b[4]);
  writeJson(join(dir, 'tokenizer.json'), {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '\u2581' },
        { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => [m[0], m[1]]),
    },
  });
  writeJson(join(dir, 'tokenizer_config.json'), {
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    add_bos_token: true,
    add_eos_token: false,
    tokenizer_class: 'LlamaTokenizerFast',
    chat_template: CHATML_TEMPLATE,
  });
}

/** A chat template in the ChatML family (<|im_start|>role ... <|im_end|>), for Modelfile conversion tests. */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * A byte-level BPE (GPT-2 pre-tokenizer) with <unk>, <s>, </s> at ids 0-2 followed by byte symbols, for a checkpoint of
 * `vocabSize` ids: bytes that do not fit are left out (the highest, never valid in UTF-8), and extra ids are padding.
 * A few merges make it a real BPE.
 */
export function makeByteTokenizer(dir: string, vocabSize: number): void {
  mkdirSync(dir, { recursive: true });
  const chars = bytesToUnicode();
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let id = 3;
  for (let b = 0; b < 256 && id < vocabSize; b++) vocab[chars[b]!] = id++;
  const merges: Array<[string, string]> = [];
  for (const [l, r] of [
    ['t', 'h'],
    ['th', 'e'],
    ['\u0120', 't'],
    ['\u0120', 'a'],
    ['i', 'n'],
  ] as Array<[string, string]>) {
    if (id >= vocabSize || vocab[l] === undefined || vocab[r] === undefined) break;
    vocab[l + r] = id++;
    merges.push([l, r]);
  }
  writeJson(join(dir, 'tokenizer.json'), {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  });
  writeJson(join(dir, 'tokenizer_config.json'), {
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    tokenizer_class: 'PreTrainedTokenizerFast',
  });
}

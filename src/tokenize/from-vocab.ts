// Builds a standard tokenizer.json object from a byte-level BPE's vocab.json + merges.txt (the "slow" GPT-2 / Qwen2
// tokenizer files), the way transformers' convert_slow_tokenizer.py (GPT2Converter, Qwen2Converter) assembles the
// fast tokenizer, so folders shipped without tokenizer.json (e.g. Qwen2.5) still load.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';

type JsonObject = Record<string, unknown>;

/** Qwen2's pre-tokenizer split pattern, from transformers' Qwen2Converter / tokenization_qwen2.PRETOKENIZE_REGEX. */
export const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Parse merges.txt: an optional "#version" line, then one "left right" pair per line. */
export function parseMerges(path: string, text: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line === '' || (i === 0 && line.startsWith('#version'))) continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new MedloraError(
        `${path}:${i + 1}: expected "left right" (two tokens separated by one space), got ${JSON.stringify(line)}`,
      );
    }
    out.push([parts[0]!, parts[1]!]);
  }
  return out;
}

/** added_tokens_decoder in tokenizer_config.json: {"<id>": {content, special, lstrip, ...}} -> tokenizer.json list. */
function addedTokensFromConfig(cfg: JsonObject, where: string): JsonObject[] {
  const dec = cfg.added_tokens_decoder;
  if (dec === undefined) return [];
  if (dec === null || typeof dec !== 'object')
    throw new MedloraError(`${where}: added_tokens_decoder must be an object`);
  const out: JsonObject[] = [];
  for (const [k, v] of Object.entries(dec as Record<string, JsonObject>)) {
    const id = Number(k);
    if (!Number.isInteger(id) || typeof v?.content !== 'string') {
      throw new MedloraError(`${where}: added_tokens_decoder entry "${k}" needs an integer id and a "content" string`);
    }
    out.push({
      id,
      content: v.content,
      single_word: v.single_word ?? false,
      lstrip: v.lstrip ?? false,
      rstrip: v.rstrip ?? false,
      normalized: v.normalized ?? false,
      special: v.special ?? false,
    });
  }
  return out.sort((a, b) => (a.id as number) - (b.id as number));
}

/**
 * tokenizer.json for dir/vocab.json + dir/merges.txt. The tokenizer_class in tokenizer_config.json picks the
 * pre-tokenizer: Qwen2Tokenizer -> NFC + Qwen2 split regex; GPT2Tokenizer (or none) -> GPT-2 ByteLevel regex.
 */
export function buildTokenizerJsonFromVocab(dir: string, cfg: JsonObject): JsonObject {
  const vocabPath = join(dir, 'vocab.json');
  const mergesPath = join(dir, 'merges.txt');
  let vocab: unknown;
  try {
    vocab = JSON.parse(readFileSync(vocabPath, 'utf8'));
  } catch (e) {
    throw new MedloraError(`${vocabPath}: not valid JSON (${(e as Error).message})`);
  }
  if (vocab === null || typeof vocab !== 'object' || Array.isArray(vocab)) {
    throw new MedloraError(`${vocabPath}: expected an object mapping token -> id`);
  }
  for (const [tok, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0)
      throw new MedloraError(
        `${vocabPath}: token ${JSON.stringify(tok)} has id ${String(id)}; expected a non-negative integer`,
      );
  }
  const merges = parseMerges(mergesPath, readFileSync(mergesPath, 'utf8'));
  const cls = typeof cfg.tokenizer_class === 'string' ? cfg.tokenizer_class.replace(/Fast$/, '') : 'GPT2Tokenizer';
  const where = join(dir, 'tokenizer_config.json');
  const model = {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: '',
    end_of_word_suffix: '',
    fuse_unk: false,
    byte_fallback: false,
    vocab,
    merges,
  };
  const byteLevelPost = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const decoder = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const added_tokens = addedTokensFromConfig(cfg, where);
  if (cls === 'Qwen2Tokenizer') {
    return {
      version: '1.0',
      added_tokens,
      model,
      decoder,
      post_processor: byteLevelPost,
      normalizer: { type: 'NFC' },
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
        ],
      },
    };
  }
  if (cls === 'GPT2Tokenizer') {
    if (cfg.add_bos_token === true) {
      throw new MedloraError(
        `${where}: add_bos_token=true with vocab.json+merges.txt is not supported; provide tokenizer.json`,
      );
    }
    // GPT-2 has <|endoftext|> in vocab.json itself; mark it special as GPT2Tokenizer does
    if (added_tokens.length === 0 && typeof (vocab as Record<string, number>)['<|endoftext|>'] === 'number') {
      added_tokens.push({
        id: (vocab as Record<string, number>)['<|endoftext|>'],
        content: '<|endoftext|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      });
    }
    return {
      version: '1.0',
      added_tokens,
      model,
      decoder,
      post_processor: byteLevelPost,
      normalizer: null,
      pre_tokenizer: {
        type: 'ByteLevel',
        add_prefix_space: cfg.add_prefix_space === true,
        trim_offsets: true,
        use_regex: true,
      },
    };
  }
  throw new MedloraError(
    `${where}: tokenizer_class "${cls}" cannot be built from vocab.json + merges.txt ` +
      `(supported: GPT2Tokenizer, Qwen2Tokenizer); provide tokenizer.json`,
  );
}

/** Llama-3's split pattern (Meta's tokenizer.py pat_str, as in the HF Llama-3 tokenizer.json). */
export const LLAMA3_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * tokenizer.json for a Llama-3 tiktoken `tokenizer.model` (lines "<base64 token bytes> <rank>"). Merges are recovered
 * as transformers' TikTokenConverter does: every split of a token into two shorter vocabulary tokens is a merge, ordered
 * by the merged token's rank (then by the parts' ranks). Only the Llama-3 family is recognised (bos
 * <|begin_of_text|>), since a tiktoken file does not say which split pattern it was trained with.
 *
 * BOS: the post_processor is that of the upstream tokenizer.json of meta-llama/Meta-Llama-3-8B(-Instruct) as revised in
 * May 2024 and of Llama-3.1 / 3.2: Sequence[ByteLevel(add_prefix_space, no trim_offsets), TemplateProcessing
 * "<|begin_of_text|> $A"], so encoding with special tokens prepends 128000. Sources: the Llama-3.2-1B tokenizer.json
 * (../shared/fixtures/hf/generated-reference-encodings: with_special ids start with 128000, tested); transformers issue
 * #30947 (Meta-Llama-3-8B: "hi, how are you today?" -> [128000, 6151, 11, 1268, 527, 499, 3432, 30]) and
 * datawhalechina/self-llm issue #140 (Meta-Llama-3-8B-Instruct: "You are so cute!" -> [128000, 2675, 527, 779, 19369, 0],
 * no 128000 with add_special_tokens=False). The April 2024 first release of that tokenizer.json had a ByteLevel
 * post_processor only (no BOS; keras-hub PR #1584 notes it), and transformers' own TikTokenConverter
 * (convert_slow_tokenizer.py: post_processor = ByteLevel(trim_offsets=False)) still builds that BOS-less form when a
 * folder has tokenizer.model alone; medlora follows the current upstream file instead. The pair form is transformers'
 * update_post_processor template "bos:0 $A:0 bos:1 $B:1". An explicit add_bos_token=false in tokenizer_config.json
 * removes the BOS, as transformers 5 does (an explicit add_bos_token makes it rebuild the post-processor).
 */
export function buildTokenizerJsonFromTiktoken(dir: string, cfg: JsonObject, bosToken: string | undefined): JsonObject {
  const path = join(dir, 'tokenizer.model');
  if (bosToken !== '<|begin_of_text|>') {
    throw new MedloraError(
      `${path}: only Llama-3 tiktoken files (bos_token <|begin_of_text|>) can be converted; provide tokenizer.json`,
    );
  }
  const byteChars = gpt2ByteChars();
  const vocab: Record<string, number> = {};
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const [b64, rankStr] = line.split(' ');
    const rank = Number(rankStr);
    if (!b64 || !Number.isInteger(rank) || rank < 0)
      throw new MedloraError(`${path}:${i + 1}: expected "<base64> <rank>", got ${JSON.stringify(line.slice(0, 60))}`);
    let s = '';
    for (const b of Buffer.from(b64, 'base64')) s += byteChars[b]!;
    vocab[s] = rank;
  }
  const merges: Array<[string, string, number, number, number]> = [];
  for (const [tok, rank] of Object.entries(vocab)) {
    if (tok.length < 2) continue;
    for (let k = 1; k < tok.length; k++) {
      const l = tok.slice(0, k),
        r = tok.slice(k);
      const rl = vocab[l],
        rr = vocab[r];
      if (rl !== undefined && rr !== undefined) merges.push([l, r, rank, rl, rr]);
    }
  }
  merges.sort((a, b) => a[2] - b[2] || a[3] - b[3] || a[4] - b[4]);
  const added_tokens = addedTokensFromConfig(cfg, join(dir, 'tokenizer_config.json'));
  const bosId = added_tokens.find((t) => t.content === bosToken)?.id;
  if (bosId === undefined)
    throw new MedloraError(`${join(dir, 'tokenizer_config.json')}: added_tokens_decoder has no ${bosToken}`);
  return {
    version: '1.0',
    added_tokens,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bosToken, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bosToken, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bosToken, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bosToken]: { id: bosToken, ids: [bosId], tokens: [bosToken] } },
        },
      ],
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
      ignore_merges: true,
      vocab,
      merges: merges.map((m) => [m[0], m[1]]),
    },
  };
}

/** GPT-2 byte -> unicode map (see bpe-train.ts bytesToUnicode; duplicated as 6 lines to keep this file standalone). */
function gpt2ByteChars(): string[] {
  const keep = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep(b) ? b : 256 + next++));
  return out;
}

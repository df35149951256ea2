// A Hugging Face tokenizer folder -> GGUF `tokenizer.*` metadata for llama.cpp: the tokenizer model ("gpt2" for
// byte-level BPE, "llama" for SentencePiece-style BPE with byte fallback), tokens, token types, merges or scores, the
// pre-tokenizer name, special token ids, add_bos / add_space_prefix and the chat template. Key names and token types:
// gguf-py constants.py (Keys.Tokenizer, TokenType); pre-tokenizer names and their split rules: llama.cpp
// src/llama-vocab.cpp (llama_vocab::impl::load); padding to the model's vocab_size with "[PAD{id}]" UNUSED tokens as
// convert_hf_to_gguf.py's get_vocab_base does. Only structures this file recognises are exported; anything else is
// an error naming the tokenizer file and field, never a guess.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildTokenizerJsonFromTiktoken,
  buildTokenizerJsonFromVocab,
  LLAMA3_SPLIT_REGEX,
  QWEN2_SPLIT_REGEX,
} from '../tokenize/from-vocab.js';
import {
  loadTokenizer,
  readJsonFile,
  tokenContent,
  type JsonObject,
  type LoadedTokenizer,
} from '../tokenize/tokenizer.js';
import { MedloraError, fieldError } from '../util/errors.js';
import { gguf, type GgufValue } from './gguf-writer.js';

/** gguf-py TokenType. */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface GgufVocab {
  /** "gpt2" (byte-level BPE) or "llama" (SentencePiece-style BPE with byte fallback) */
  model: 'gpt2' | 'llama';
  /** llama.cpp pre-tokenizer name (gpt2 model only) */
  pre: string | undefined;
  tokens: string[];
  tokenTypes: number[];
  /** tokens appended as [PAD{id}] to reach the model's vocab_size */
  padded: number;
  metadata: Array<[string, GgufValue]>;
  /** the loaded tokenizer (special ids, chat template) */
  tokenizer: LoadedTokenizer;
  /** differences from medlora's tokenizer that llama.cpp cannot express (printed by export) */
  notes: string[];
}

type PreTok = JsonObject & { type?: unknown };

/** The tokenizer.json object medlora itself would load from this folder (same fallbacks as loadTokenizer). */
function tokenizerJson(dir: string): { tj: JsonObject; file: string } {
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = existsSync(cfgPath) ? readJsonFile(cfgPath) : {};
  if (existsSync(join(dir, 'tokenizer.json')))
    return { tj: readJsonFile(join(dir, 'tokenizer.json')), file: join(dir, 'tokenizer.json') };
  if (existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'))) {
    return { tj: buildTokenizerJsonFromVocab(dir, cfg), file: join(dir, 'vocab.json') };
  }
  if (existsSync(join(dir, 'tokenizer.model')) && tokenContent(cfg.bos_token) === '<|begin_of_text|>') {
    return {
      tj: buildTokenizerJsonFromTiktoken(dir, cfg, tokenContent(cfg.bos_token)),
      file: join(dir, 'tokenizer.model'),
    };
  }
  throw fieldError(
    'tokenizer',
    `${dir}: no tokenizer.json (nor vocab.json + merges.txt, nor a Llama-3 tokenizer.model), which a GGUF needs; pass tokenizer DIR`,
  );
}

function isByteLevel(p: unknown, useRegex: boolean): boolean {
  const o = p as PreTok | null;
  return !!o && o.type === 'ByteLevel' && (o.use_regex ?? true) === useRegex && !o.add_prefix_space;
}

function splitRegex(p: unknown): string | undefined {
  const o = p as PreTok | null;
  if (!o || o.type !== 'Split' || o.behavior !== 'Isolated' || o.invert) return undefined;
  const pat = o.pattern as { Regex?: unknown } | undefined;
  return typeof pat?.Regex === 'string' ? pat.Regex : undefined;
}

/**
 * llama.cpp's pre-tokenizer name for a byte-level BPE tokenizer.json, recognised by its normalizer + pre_tokenizer
 * (the split rules llama.cpp implements for that name in llama-vocab.cpp):
 *   gpt-2     ByteLevel(use_regex) alone: GPT-2's pattern
 *   llama-bpe Split(Llama-3 pattern) + ByteLevel(no regex)
 *   qwen2     [NFC] Split(Qwen2 pattern) + ByteLevel(no regex)
 *   smollm    Digits(individual) + ByteLevel(use_regex)
 *   olmo      NFC + ByteLevel(use_regex): the GPT-NeoX tokenizer (Pythia, OLMo, StableLM-3B); the converter names it
 *             "olmo" (its hash of allenai/OLMo-1.7-7B-hf), whose split is GPT-2's. llama.cpp applies no NFC: see
 *             NFC_NOTE.
 */
export function preTokenizerName(tj: JsonObject, file: string): string {
  const norm = tj.normalizer as PreTok | null | undefined;
  const pre = tj.pre_tokenizer as PreTok | null | undefined;
  const normType = norm ? String(norm.type) : 'none';
  const seq =
    pre?.type === 'Sequence' && Array.isArray(pre.pretokenizers) ? (pre.pretokenizers as unknown[]) : undefined;
  if (normType === 'none' && isByteLevel(pre, true)) return 'gpt-2';
  if (normType === 'NFC' && isByteLevel(pre, true)) return 'olmo';
  if (seq?.length === 2 && isByteLevel(seq[1], false)) {
    const re = splitRegex(seq[0]);
    if (normType === 'none' && re === LLAMA3_SPLIT_REGEX) return 'llama-bpe';
    if ((normType === 'none' || normType === 'NFC') && re === QWEN2_SPLIT_REGEX) return 'qwen2';
  }
  if (
    normType === 'none' &&
    seq?.length === 2 &&
    (seq[0] as PreTok).type === 'Digits' &&
    (seq[0] as PreTok).individual_digits === true &&
    isByteLevel(seq[1], true)
  ) {
    return 'smollm';
  }
  throw new MedloraError(
    `${file}: normalizer ${normType} + pre_tokenizer ${JSON.stringify(pre ?? null).slice(0, 200)} is not a pre-tokenizer ` +
      'medlora can name for llama.cpp (known: GPT-2 ByteLevel, Llama-3 split, Qwen2 split, SmolLM digits + ByteLevel)',
  );
}

/** Why an NFC-normalising tokenizer is still exported (llama.cpp's BPE tokenizers never normalise). */
export const NFC_NOTE =
  "the tokenizer's NFC normalizer has no llama.cpp counterpart: text already in NFC (almost all text) tokenizes the same; decomposed accents (e.g. e + U+0301) do not";

/** add_space_prefix of a SentencePiece-style tokenizer.json: Prepend("▁") normalizer or Metaspace pre-tokenizer. */
function spmSpacePrefix(tj: JsonObject, file: string): boolean {
  const norm = tj.normalizer as PreTok | null | undefined;
  const parts =
    norm?.type === 'Sequence' && Array.isArray(norm.normalizers) ? (norm.normalizers as PreTok[]) : norm ? [norm] : [];
  const replacesSpace = parts.some(
    (p) =>
      p.type === 'Replace' && (p.pattern as { String?: unknown } | undefined)?.String === ' ' && p.content === '\u2581',
  );
  if (replacesSpace) return parts.some((p) => p.type === 'Prepend' && p.prepend === '\u2581');
  const pre = tj.pre_tokenizer as PreTok | null | undefined;
  if (pre?.type === 'Metaspace' && pre.replacement === '\u2581') {
    if (pre.prepend_scheme !== undefined) return pre.prepend_scheme !== 'never';
    return pre.add_prefix_space !== false;
  }
  throw new MedloraError(
    `${file}: a byte-fallback BPE whose spaces are not turned into "\u2581" (no Replace normalizer or Metaspace ` +
      "pre-tokenizer): llama.cpp's SentencePiece tokenizer would split it differently",
  );
}

function mergeList(model: JsonObject, file: string): Array<[string, string]> {
  const raw = model.merges;
  if (!Array.isArray(raw)) throw new MedloraError(`${file}: model.merges must be a list`);
  return raw.map((m, i) => {
    if (typeof m === 'string') {
      const k = m.indexOf(' ', 1);
      if (k < 0) throw new MedloraError(`${file}: model.merges[${i}] ${JSON.stringify(m)} is not "left right"`);
      return [m.slice(0, k), m.slice(k + 1)];
    }
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
    throw new MedloraError(`${file}: model.merges[${i}] is neither "left right" nor [left, right]`);
  });
}

/**
 * Build the tokenizer metadata for a model whose embedding has `vocabSize` rows. `chatTemplate` overrides the folder's.
 */
export function ggufVocab(dir: string, vocabSize: number, o: { chatTemplate?: string } = {}): GgufVocab {
  const { tj, file } = tokenizerJson(dir);
  const tokenizer = loadTokenizer(dir, o.chatTemplate !== undefined ? { chatTemplate: o.chatTemplate } : {});
  const model = tj.model as JsonObject | undefined;
  if (!model || model.type !== 'BPE') {
    throw new MedloraError(
      `${file}: model.type ${JSON.stringify(model?.type)} is not supported for GGUF export (only BPE: byte-level or SentencePiece-style with byte_fallback)`,
    );
  }
  const vocab = model.vocab as Record<string, number> | undefined;
  if (!vocab || typeof vocab !== 'object') throw new MedloraError(`${file}: model.vocab is missing`);
  const added = (Array.isArray(tj.added_tokens) ? tj.added_tokens : []) as Array<{
    id: number;
    content: string;
    special?: boolean;
  }>;

  const tokens: Array<string | undefined> = [];
  const types: number[] = [];
  const put = (id: number, text: string, type: number, where: string): void => {
    if (!Number.isInteger(id) || id < 0) throw new MedloraError(`${file}: ${where} has id ${id}`);
    if (id >= vocabSize) {
      throw new MedloraError(
        `${file}: token ${JSON.stringify(text)} has id ${id} but the model's vocab_size is ${vocabSize} (tokenizer for another model?)`,
      );
    }
    tokens[id] = text;
    types[id] = type;
  };
  const byteFallback = model.byte_fallback === true;
  const kind: 'gpt2' | 'llama' = byteFallback ? 'llama' : 'gpt2';
  const unk = typeof model.unk_token === 'string' ? model.unk_token : undefined;
  for (const [text, id] of Object.entries(vocab)) {
    const t =
      kind === 'llama' && /^<0x[0-9A-Fa-f]{2}>$/.test(text)
        ? TOKEN_TYPE.BYTE
        : text === unk
          ? TOKEN_TYPE.UNKNOWN
          : TOKEN_TYPE.NORMAL;
    put(id, text, t, `model.vocab ${JSON.stringify(text)}`);
  }
  for (const a of added) {
    if (typeof a.content !== 'string')
      throw new MedloraError(`${file}: added_tokens entry with id ${a.id} has no content`);
    const t = a.content === unk ? TOKEN_TYPE.UNKNOWN : a.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
    put(a.id, a.content, t, `added_tokens ${JSON.stringify(a.content)}`);
  }
  let padded = 0;
  const out: string[] = [];
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      out.push(`[PAD${i}]`);
      types[i] = TOKEN_TYPE.UNUSED;
      padded++;
    } else out.push(tokens[i]!);
  }

  const md: Array<[string, GgufValue]> = [];
  md.push(['tokenizer.ggml.model', gguf.str(kind)]);
  let pre: string | undefined;
  const merges = mergeList(model, file);
  if (kind === 'gpt2') {
    if ((tj.decoder as PreTok | null)?.type !== 'ByteLevel')
      throw new MedloraError(
        `${file}: a BPE without byte_fallback must have a ByteLevel decoder (byte-level BPE) for GGUF export`,
      );
    pre = preTokenizerName(tj, file);
    md.push(['tokenizer.ggml.pre', gguf.str(pre)]);
    md.push(['tokenizer.ggml.tokens', gguf.arr('string', out)]);
    md.push(['tokenizer.ggml.token_type', gguf.arr('i32', types)]);
    md.push([
      'tokenizer.ggml.merges',
      gguf.arr(
        'string',
        merges.map(([l, r]) => `${l} ${r}`),
      ),
    ]);
  } else {
    // llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined text has the highest score (leftmost on
    // ties); Hugging Face's BPE merges the pair with the lowest merge rank. score = -(rank of the first merge producing
    // the token) gives the same order; tokens no merge produces (bytes, single characters, specials) score 0.
    const scores = new Array<number>(vocabSize).fill(0);
    const seen = new Set<number>();
    merges.forEach(([l, r], rank) => {
      const id = vocab[l + r];
      if (id !== undefined && !seen.has(id)) {
        seen.add(id);
        scores[id] = -rank - 1;
      }
    });
    md.push(['tokenizer.ggml.pre', gguf.str('default')]);
    md.push(['tokenizer.ggml.tokens', gguf.arr('string', out)]);
    md.push(['tokenizer.ggml.scores', gguf.arr('f32', scores)]);
    md.push(['tokenizer.ggml.token_type', gguf.arr('i32', types)]);
    md.push(['tokenizer.ggml.add_space_prefix', gguf.bool(spmSpacePrefix(tj, file))]);
  }
  const ids: Array<[string, number | undefined]> = [
    ['tokenizer.ggml.bos_token_id', tokenizer.bosId],
    ['tokenizer.ggml.eos_token_id', tokenizer.eosId],
    ['tokenizer.ggml.unknown_token_id', tokenizer.unkId],
    ['tokenizer.ggml.padding_token_id', tokenizer.padId],
  ];
  // a generation_config eos id besides the tokenizer's eos (e.g. <|eot_id|>, <|im_end|>) ends a turn
  const eot = tokenizer.eosIds.find((i) => i !== tokenizer.eosId);
  if (eot !== undefined) ids.push(['tokenizer.ggml.eot_token_id', eot]);
  for (const [k, v] of ids) if (v !== undefined) md.push([k, gguf.u32(v)]);
  md.push(['tokenizer.ggml.add_bos_token', gguf.bool(tokenizer.addsBos)]);
  md.push(['tokenizer.ggml.add_eos_token', gguf.bool(false)]);
  if (tokenizer.chatTemplate !== undefined) md.push(['tokenizer.chat_template', gguf.str(tokenizer.chatTemplate)]);
  const notes = (tj.normalizer as PreTok | null | undefined)?.type === 'NFC' ? [NFC_NOTE] : [];
  return { model: kind, pre, tokens: out, tokenTypes: types, padded, metadata: md, tokenizer, notes };
}

/** For tests and diagnostics: the raw tokenizer.json medlora reads from a folder. */
export function readTokenizerJson(dir: string): JsonObject {
  return tokenizerJson(dir).tj;
}

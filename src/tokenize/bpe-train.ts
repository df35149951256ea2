// Trains a small byte-level BPE tokenizer (GPT-2 style: bytes mapped to printable unicode, a regex split on
// whitespace / letters / digits / punctuation, merges learned by pair frequency) and writes a standard tokenizer.json
// + tokenizer_config.json that @huggingface/tokenizers (and so loadTokenizer) loads. Used by `medlora demo`.
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { writeFileAtomic } from '../io/safetensors.js';

/**
 * GPT-2's reversible byte -> unicode map (openai/gpt-2 encoder.py bytes_to_unicode, as in HF tokenizers' ByteLevel):
 * printable bytes ! .. ~, ¡ .. ¬, ® .. ÿ map to themselves; the other 68 bytes map to U+0100 upward in byte order.
 */
export function bytesToUnicode(): string[] {
  const keep = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep(b) ? b : 256 + next++);
  return out;
}

/** GPT-2's split pattern (the ByteLevel pre-tokenizer with use_regex=true): contractions, words, numbers, punctuation, spaces. */
export const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const BYTE_CHARS = bytesToUnicode();
const encoder = new TextEncoder();

/** A text's pre-tokens in byte-level form (each a string of mapped byte characters). */
export function byteLevelPretokens(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(GPT2_SPLIT)) {
    let s = '';
    for (const b of encoder.encode(m[0])) s += BYTE_CHARS[b]!;
    out.push(s);
  }
  return out;
}

export interface SpecialTokens {
  bos?: string;
  eos?: string;
  pad?: string;
  /** byte-level BPE can encode any text, so an unk token is only for callers that want one */
  unk?: string;
  /** further control tokens, e.g. chat markers */
  extra?: string[];
}

export interface BpeTrainOptions {
  /** total vocabulary size including special tokens and the 256 byte symbols */
  vocabSize: number;
  specialTokens?: SpecialTokens;
  /** a pair must occur at least this often to be merged (default 2) */
  minFrequency?: number;
  onProgress?: (merges: number, target: number) => void;
}

export interface TrainedBpe {
  /** token -> id: special tokens first, then the 256 byte symbols, then one token per merge */
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
  specials: Required<Pick<SpecialTokens, 'extra'>> & Omit<SpecialTokens, 'extra'>;
  /** special tokens in id order */
  specialList: string[];
}

const DEFAULT_SPECIALS: SpecialTokens = { bos: '<s>', eos: '</s>', pad: '<pad>' };

/** Learn merges from texts. Deterministic: ties in pair count go to the lexicographically smaller pair. */
export function trainBpe(texts: string[], opts: BpeTrainOptions): TrainedBpe {
  const sp = { ...DEFAULT_SPECIALS, ...opts.specialTokens };
  const specialList: string[] = [];
  for (const t of [sp.bos, sp.eos, sp.pad, sp.unk, ...(sp.extra ?? [])])
    if (t !== undefined && !specialList.includes(t)) specialList.push(t);
  const minFreq = opts.minFrequency ?? 2;
  const base = specialList.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < base) {
    throw new MedloraError(
      `BPE training: vocab size ${opts.vocabSize} is too small; it must be at least ${base} (${specialList.length} special tokens + 256 bytes)`,
    );
  }
  const vocab = new Map<string, number>();
  for (const t of specialList) vocab.set(t, vocab.size);
  for (const c of BYTE_CHARS) vocab.set(c, vocab.size);

  // distinct pre-tokens with counts; each is a list of symbols, merged in place
  const counts = new Map<string, number>();
  for (const text of texts) for (const p of byteLevelPretokens(text)) counts.set(p, (counts.get(p) ?? 0) + 1);
  const words: string[][] = [];
  const freq: number[] = [];
  for (const [w, c] of [...counts].sort(([a], [b]) => (a < b ? -1 : 1))) {
    words.push([...w]);
    freq.push(c);
  }

  // pair statistics: count and the words containing it (kept up to date incrementally)
  const SEP = '\u0000';
  const pairCount = new Map<string, number>();
  const pairWords = new Map<string, Set<number>>();
  const addPairs = (wi: number, sign: 1 | -1): void => {
    const w = words[wi]!;
    for (let i = 0; i + 1 < w.length; i++) {
      const k = w[i]! + SEP + w[i + 1]!;
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * freq[wi]!);
      if (sign > 0) {
        let s = pairWords.get(k);
        if (!s) pairWords.set(k, (s = new Set()));
        s.add(wi);
      }
    }
  };
  for (let i = 0; i < words.length; i++) addPairs(i, 1);

  const merges: Array<[string, string]> = [];
  const target = opts.vocabSize - base;
  // stop at the target size (a merge can rebuild an existing token, so count the vocabulary, not the merges)
  while (vocab.size < opts.vocabSize) {
    let best: string | undefined,
      bestCount = 0;
    for (const [k, c] of pairCount) {
      if (c > bestCount || (c === bestCount && c > 0 && best !== undefined && k < best)) {
        best = k;
        bestCount = c;
      }
    }
    if (best === undefined || bestCount < minFreq) break; // nothing frequent enough left to merge
    const [a, b] = best.split(SEP) as [string, string];
    const merged = a + b;
    merges.push([a, b]);
    if (!vocab.has(merged)) vocab.set(merged, vocab.size);
    for (const wi of pairWords.get(best) ?? []) {
      const w = words[wi]!;
      addPairs(wi, -1);
      const nw: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          nw.push(merged);
          i++;
        } else nw.push(w[i]!);
      }
      words[wi] = nw;
      addPairs(wi, 1);
    }
    pairWords.delete(best);
    for (const [k, c] of pairCount) if (c <= 0) pairCount.delete(k);
    opts.onProgress?.(vocab.size - base, target);
  }
  return { vocab, merges, specials: { ...sp, extra: sp.extra ?? [] }, specialList };
}

export interface TokenizerFileOptions {
  /** prepend BOS when encoding with special tokens (a TemplateProcessing post-processor), default true */
  addBos?: boolean;
  chatTemplate?: string;
  modelMaxLength?: number;
}

/** The standard tokenizer.json object for a trained BPE. */
export function trainedTokenizerJson(t: TrainedBpe, o: TokenizerFileOptions = {}): Record<string, unknown> {
  const addBos = o.addBos ?? true;
  const bos = t.specials.bos;
  if (addBos && bos === undefined) throw new MedloraError('BPE tokenizer: addBos needs a bos special token');
  const post =
    addBos && bos !== undefined
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [t.vocab.get(bos)!], tokens: [bos] } },
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: t.specialList.map((c) => ({
      id: t.vocab.get(c)!,
      content: c,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: post,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: t.specials.unk ?? null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(t.vocab),
      merges: t.merges,
    },
  };
}

/** The matching tokenizer_config.json object (special tokens by name, no text clean-up so decode round-trips). */
export function trainedTokenizerConfig(t: TrainedBpe, o: TokenizerFileOptions = {}): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: o.addBos ?? true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: o.modelMaxLength ?? 2048,
    added_tokens_decoder: Object.fromEntries(
      t.specialList.map((c) => [
        String(t.vocab.get(c)),
        { content: c, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
      ]),
    ),
  };
  if (t.specials.bos !== undefined) cfg.bos_token = t.specials.bos;
  if (t.specials.eos !== undefined) cfg.eos_token = t.specials.eos;
  if (t.specials.pad !== undefined) cfg.pad_token = t.specials.pad;
  if (t.specials.unk !== undefined) cfg.unk_token = t.specials.unk;
  if (t.specials.extra.length) cfg.additional_special_tokens = t.specials.extra;
  if (o.chatTemplate !== undefined) cfg.chat_template = o.chatTemplate;
  return cfg;
}

/** Write tokenizer.json + tokenizer_config.json into dir (each atomically). */
export function writeTrainedTokenizer(dir: string, t: TrainedBpe, o: TokenizerFileOptions = {}): void {
  const enc = (v: unknown): Uint8Array[] => [new TextEncoder().encode(`${JSON.stringify(v, null, 2)}\n`)];
  writeFileAtomic(join(dir, 'tokenizer.json'), enc(trainedTokenizerJson(t, o)));
  writeFileAtomic(join(dir, 'tokenizer_config.json'), enc(trainedTokenizerConfig(t, o)));
}

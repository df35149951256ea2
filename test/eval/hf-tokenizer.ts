// Test-only TextTokenizer over @huggingface/tokenizers for the shared tokenizer fixtures (the real loadTokenizer lives
// in src/tokenize on another branch and replaces this). Special ids come from the files: tokenizer_config.json or
// special_tokens_map.json for names, config.json as the fallback for ids.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import type { ChatMessage, TextTokenizer } from '../../src/tokenize/types.js';
import { sharedPath } from '../../src/util/paths.js';

type Json = Record<string, unknown>;
const readJson = (p: string): Json => (existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Json) : {});
const tokenName = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : v && typeof v === 'object' && typeof (v as Json).content === 'string' ? (v as Json).content as string : undefined;

export function fixtureTokenizerDir(name: string): string {
  return sharedPath('fixtures', 'hf', name);
}

export function loadTestTokenizer(dir: string): TextTokenizer {
  const tj = readJson(join(dir, 'tokenizer.json'));
  const tc = readJson(join(dir, 'tokenizer_config.json'));
  const stm = readJson(join(dir, 'special_tokens_map.json'));
  const cfg = readJson(join(dir, 'config.json'));
  const tok = new Tokenizer(tj, tc);
  const vocab = tok.get_vocab(true);
  let vocabSize = 0;
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1);
  const special = new Set<number>();
  for (const a of (tj.added_tokens as Array<{ id: number; special: boolean }> | undefined) ?? []) if (a.special) special.add(a.id);
  const resolve = (key: 'eos' | 'bos' | 'pad'): { id: number | undefined; token: string | undefined } => {
    const name = tokenName(tc[`${key}_token`]) ?? tokenName(stm[`${key}_token`]);
    if (name !== undefined && vocab.has(name)) return { id: vocab.get(name), token: name };
    const id = cfg[`${key}_token_id`];
    if (typeof id === 'number') return { id, token: tok.id_to_token(id) };
    return { id: undefined, token: undefined };
  };
  const bos = resolve('bos'), eos = resolve('eos'), pad = resolve('pad');
  const addsBos = bos.id !== undefined && tok.encode('a').ids[0] === bos.id;
  return {
    vocabSize,
    bosId: bos.id, eosId: eos.id, padId: pad.id, bosToken: bos.token, eosToken: eos.token,
    addsBos,
    encode: (text, opts) => tok.encode(text, { add_special_tokens: opts?.addSpecialTokens ?? false }).ids,
    decode: (ids, opts) => tok.decode(ids, { skip_special_tokens: opts?.skipSpecialTokens ?? true, clean_up_tokenization_spaces: false }),
    idToToken: (id) => tok.id_to_token(id),
    tokenToId: (t) => tok.token_to_id(t),
    isSpecial: (id) => special.has(id),
    chatTemplate: typeof tc.chat_template === 'string' ? tc.chat_template : undefined,
    applyChatTemplate(_m: ChatMessage[]): string {
      throw new Error('test tokenizer: chat templates are not implemented here');
    },
  };
}

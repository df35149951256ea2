// TEST-ONLY TextTokenizer over @huggingface/tokenizers (tokenizer.json + tokenizer_config.json), so data tests can run
// on real tokenizers before src/tokenize/tokenizer.ts lands; the lead swaps it for loadTokenizer(dir) later.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import type { ChatMessage, TextTokenizer } from '../../src/tokenize/types.js';

function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** `chatTemplateOverride`: use this template instead of tokenizer_config.json's (e.g. a fixture from chat-templates/). */
export function loadTestTokenizer(dir: string, chatTemplateOverride?: string): TextTokenizer {
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { added_tokens?: Array<{ id: number; content: string; special: boolean }> };
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>) : {};
  const tk = new Tokenizer(json, cfg);
  let bosToken = tokenString(cfg.bos_token);
  let eosToken = tokenString(cfg.eos_token);
  const padToken = tokenString(cfg.pad_token);
  if (!existsSync(cfgPath) && existsSync(join(dir, 'config.json'))) {
    // gpt2 ships no tokenizer_config.json; its config.json names bos/eos ids
    const mc = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { bos_token_id?: number; eos_token_id?: number };
    if (mc.bos_token_id !== undefined) bosToken = tk.id_to_token(mc.bos_token_id);
    if (mc.eos_token_id !== undefined) eosToken = tk.id_to_token(mc.eos_token_id);
  }
  const bosId = bosToken !== undefined ? tk.token_to_id(bosToken) : undefined;
  const eosId = eosToken !== undefined ? tk.token_to_id(eosToken) : undefined;
  const padId = padToken !== undefined ? tk.token_to_id(padToken) : undefined;
  const special = new Set((json.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
  const probe = tk.encode('a', { add_special_tokens: true }).ids;
  const addsBos = bosId !== undefined && probe[0] === bosId;
  const chatTemplate = chatTemplateOverride ?? (typeof cfg.chat_template === 'string' ? cfg.chat_template : undefined);
  const vocabSize = tk.get_vocab(true).size;
  return {
    vocabSize, bosId, eosId, padId, bosToken, eosToken, addsBos, chatTemplate,
    encode: (text, opts) => tk.encode(text, { add_special_tokens: opts?.addSpecialTokens ?? true }).ids,
    decode: (ids, opts) => tk.decode(ids, { skip_special_tokens: opts?.skipSpecialTokens ?? false }),
    idToToken: (id) => tk.id_to_token(id),
    tokenToId: (t) => tk.token_to_id(t),
    isSpecial: (id) => special.has(id),
    applyChatTemplate(messages: ChatMessage[], opts) {
      if (!chatTemplate) throw new Error(`${dir}: no chat_template`);
      return new Template(chatTemplate).render({ messages, add_generation_prompt: opts?.addGenerationPrompt ?? false,
        bos_token: bosToken ?? '', eos_token: eosToken ?? '' });
    },
  };
}

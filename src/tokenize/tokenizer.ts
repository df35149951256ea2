// loadTokenizer(dir): the TextTokenizer contract over a Hugging Face tokenizer folder (tokenizer.json +
// tokenizer_config.json [+ special_tokens_map.json, generation_config.json, config.json]), using @huggingface/tokenizers
// for encoding/decoding and @huggingface/jinja for chat templates.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { MedloraError } from '../util/errors.js';
import type { ChatMessage, TextTokenizer } from './types.js';
import { buildTokenizerJsonFromTiktoken, buildTokenizerJsonFromVocab } from './from-vocab.js';

/** JSON object as read from disk (fields are checked where used). */
export type JsonObject = Record<string, unknown>;

/** Extra information beyond the shared contract (medlora-specific; safe to ignore). */
export interface LoadedTokenizer extends TextTokenizer {
  /** the folder it was loaded from */
  readonly dir: string;
  /** every id that should stop generation: generation_config.json eos_token_id (int or list) plus eosId */
  readonly eosIds: number[];
  readonly unkId: number | undefined;
  readonly padToken: string | undefined;
  /** where the tokenizer came from: 'tokenizer.json' or 'vocab.json+merges.txt' */
  readonly source: string;
  /** encode returning tokens too (for display) */
  encodeWithTokens(text: string, opts?: { addSpecialTokens?: boolean }): { ids: number[]; tokens: string[] };
}

/** Read and parse a JSON file, turning failures into a clear error naming the file. */
export function readJsonFile(path: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MedloraError(`${path}: cannot read (${(e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MedloraError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new MedloraError(`${path}: expected a JSON object at the top level`);
  }
  return v as JsonObject;
}

function readJsonIfExists(path: string): JsonObject | undefined {
  return existsSync(path) ? readJsonFile(path) : undefined;
}

/** A special token in tokenizer_config / special_tokens_map is a string, an {content} object, or null. */
export function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v !== null && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/** generation_config / config ids: an int or a list of ints. */
function idList(v: unknown): number[] {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
  return [];
}

/** Pick the chat template: tokenizer_config's string, its named list ("default"), or a chat_template.jinja file. */
function resolveChatTemplate(dir: string, cfg: JsonObject): string | undefined {
  const ct = cfg.chat_template;
  if (typeof ct === 'string') return ct;
  if (Array.isArray(ct)) {
    const named = ct as Array<{ name?: unknown; template?: unknown }>;
    const def = named.find((t) => t.name === 'default') ?? named[0];
    if (def && typeof def.template === 'string') return def.template;
  }
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return readFileSync(jinja, 'utf8');
  return undefined;
}

interface SpecialResolution {
  bosToken?: string | undefined;
  eosToken?: string | undefined;
  padToken?: string | undefined;
  unkToken?: string | undefined;
}

/** tokenizer_config.json wins over special_tokens_map.json (as in transformers, which merges the map first). */
function resolveSpecialTokens(cfg: JsonObject, map: JsonObject | undefined): SpecialResolution {
  const pick = (key: string): string | undefined => {
    if (key in cfg) return tokenContent(cfg[key]); // explicit null in the config means "none"
    return map ? tokenContent(map[key]) : undefined;
  };
  return {
    bosToken: pick('bos_token'),
    eosToken: pick('eos_token'),
    padToken: pick('pad_token'),
    unkToken: pick('unk_token'),
  };
}

class HfTokenizer implements LoadedTokenizer {
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly padId: number | undefined;
  readonly unkId: number | undefined;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly addsBos: boolean;
  readonly eosIds: number[];
  readonly chatTemplate: string | undefined;
  private readonly special: Set<number>;
  private readonly stripBos: boolean;
  private compiledTemplate: Template | undefined;

  constructor(
    readonly dir: string,
    readonly source: string,
    private readonly tok: Tokenizer,
    cfg: JsonObject,
    specialMap: JsonObject | undefined,
    genCfg: JsonObject | undefined,
    modelCfg: JsonObject | undefined,
  ) {
    let maxId = -1;
    for (const id of tok.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    this.special = new Set<number>();
    for (const [id, t] of tok.get_added_tokens_decoder()) if (t.special) this.special.add(id);

    const sp = resolveSpecialTokens(cfg, specialMap);
    const idOf = (what: string, tokStr: string | undefined): number | undefined => {
      if (tokStr === undefined) return undefined;
      const id = tok.token_to_id(tokStr);
      if (id === undefined) {
        throw new MedloraError(
          `${dir}: ${what} "${tokStr}" (from tokenizer_config.json/special_tokens_map.json) is not in the vocabulary of ${source}`,
        );
      }
      return id;
    };
    // When the tokenizer files name no token, fall back to ids in generation_config.json / config.json (still files,
    // never guesses); e.g. a bare GPT-2 folder only has bos/eos ids in config.json.
    const idFromConfigs = (key: string): number | undefined => idList(genCfg?.[key])[0] ?? idList(modelCfg?.[key])[0];
    const fromId = (id: number | undefined): string | undefined => (id === undefined ? undefined : tok.id_to_token(id));

    this.bosId =
      idOf('bos_token', sp.bosToken) ??
      (sp.bosToken === undefined && !('bos_token' in cfg) ? idFromConfigs('bos_token_id') : undefined);
    this.eosId =
      idOf('eos_token', sp.eosToken) ??
      (sp.eosToken === undefined && !('eos_token' in cfg) ? idFromConfigs('eos_token_id') : undefined);
    this.padId = idOf('pad_token', sp.padToken);
    this.unkId = idOf('unk_token', sp.unkToken);
    this.bosToken = sp.bosToken ?? fromId(this.bosId);
    this.eosToken = sp.eosToken ?? fromId(this.eosId);
    this.padToken = sp.padToken;

    // Generation stops on generation_config's eos ids (HF generate uses those), plus the tokenizer's own eos.
    const eosIds = idList(genCfg?.eos_token_id);
    if (this.eosId !== undefined && !eosIds.includes(this.eosId)) eosIds.push(this.eosId);
    this.eosIds = eosIds;

    // Whether BOS is prepended is decided by the post-processor in tokenizer.json; observe it rather than re-deriving
    // it. An explicit add_bos_token=false in tokenizer_config.json (as transformers' Llama fast tokenizer honours)
    // removes it.
    const probe = tok.encode('a', { add_special_tokens: true }).ids;
    const probeBos = this.bosId !== undefined && probe[0] === this.bosId;
    this.stripBos = probeBos && cfg.add_bos_token === false;
    this.addsBos = probeBos && !this.stripBos;

    this.chatTemplate = resolveChatTemplate(dir, cfg);
  }

  encodeWithTokens(text: string, opts?: { addSpecialTokens?: boolean }): { ids: number[]; tokens: string[] } {
    if (typeof text !== 'string') throw new MedloraError(`encode: expected a string, got ${typeof text}`);
    const add = opts?.addSpecialTokens ?? true;
    const e = this.tok.encode(text, { add_special_tokens: add });
    let ids = e.ids,
      tokens = e.tokens;
    if (add && this.stripBos && ids[0] === this.bosId) {
      ids = ids.slice(1);
      tokens = tokens.slice(1);
    }
    return { ids, tokens };
  }

  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[] {
    return this.encodeWithTokens(text, opts).ids;
  }

  decode(ids: number[], opts?: { skipSpecialTokens?: boolean; cleanUpTokenizationSpaces?: boolean }): string {
    // the library rejects an empty array; decoding nothing is simply ""
    if (ids.length === 0) return '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new MedloraError(`decode: id ${id} at position ${i} is outside the vocabulary [0, ${this.vocabSize})`);
      }
    }
    return this.tok.decode(ids, {
      skip_special_tokens: opts?.skipSpecialTokens ?? false,
      ...(opts?.cleanUpTokenizationSpaces !== undefined
        ? { clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces }
        : {}),
    });
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.special.has(id);
  }

  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string {
    if (this.chatTemplate === undefined) {
      throw new MedloraError(
        `${this.dir}: this tokenizer has no chat template (no chat_template in tokenizer_config.json, no chat_template.jinja)`,
      );
    }
    this.compiledTemplate ??= compileTemplate(this.chatTemplate, this.dir);
    return renderTemplate(
      this.compiledTemplate,
      messages,
      {
        bos_token: this.bosToken ?? '',
        eos_token: this.eosToken ?? '',
        pad_token: this.padToken ?? '',
        add_generation_prompt: opts?.addGenerationPrompt ?? false,
      },
      this.dir,
    );
  }
}

function compileTemplate(src: string, where: string): Template {
  try {
    return new Template(src);
  } catch (e) {
    throw new MedloraError(`${where}: chat template does not parse (${(e as Error).message})`);
  }
}

function renderTemplate(t: Template, messages: ChatMessage[], vars: Record<string, unknown>, where: string): string {
  try {
    return t.render({ ...vars, messages });
  } catch (e) {
    // templates call raise_exception() for e.g. non-alternating roles: pass their message through
    throw new MedloraError(`${where}: chat template failed: ${(e as Error).message}`);
  }
}

/** Render a chat template string directly (used for templates stored outside a tokenizer folder, and tests). */
export function renderChatTemplate(
  template: string,
  messages: ChatMessage[],
  vars: { bos_token?: string; eos_token?: string; add_generation_prompt?: boolean } = {},
): string {
  return renderTemplate(
    compileTemplate(template, 'chat template'),
    messages,
    { bos_token: '', eos_token: '', add_generation_prompt: false, ...vars },
    'chat template',
  );
}

/**
 * Load the tokenizer in `dir`. Needs tokenizer.json; without it, a GPT-2-style vocab.json + merges.txt pair is
 * converted, and so is a Llama-3 tiktoken tokenizer.model (see from-vocab.ts). Anything else is a clear error saying which files are missing.
 * `opts.chatTemplate` overrides the chat template found in the folder.
 */
export function loadTokenizer(dir: string, opts: { chatTemplate?: string } = {}): LoadedTokenizer {
  if (!existsSync(dir)) throw new MedloraError(`tokenizer folder ${dir} does not exist`);
  const cfg = readJsonIfExists(join(dir, 'tokenizer_config.json')) ?? {};
  // a chat template given by the caller (e.g. --chat-template FILE) replaces the folder's own
  if (opts.chatTemplate !== undefined) cfg.chat_template = opts.chatTemplate;
  const specialMap = readJsonIfExists(join(dir, 'special_tokens_map.json'));
  const genCfg = readJsonIfExists(join(dir, 'generation_config.json'));
  const modelCfg = readJsonIfExists(join(dir, 'config.json'));

  let tj: JsonObject;
  let source: string;
  const tjPath = join(dir, 'tokenizer.json');
  if (existsSync(tjPath)) {
    tj = readJsonFile(tjPath);
    source = 'tokenizer.json';
  } else if (existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'))) {
    tj = buildTokenizerJsonFromVocab(dir, cfg);
    source = 'vocab.json+merges.txt';
  } else if (existsSync(join(dir, 'tokenizer.model')) && tokenContent(cfg.bos_token) === '<|begin_of_text|>') {
    tj = buildTokenizerJsonFromTiktoken(dir, cfg, tokenContent(cfg.bos_token));
    source = 'tokenizer.model (tiktoken)';
  } else {
    const present = ['tokenizer.model', 'tokenizer.bin', 'vocab.json', 'merges.txt'].filter((f) =>
      existsSync(join(dir, f)),
    );
    throw new MedloraError(
      `${dir}: no tokenizer.json (and no vocab.json + merges.txt pair to build one from)` +
        (present.length
          ? `; found only ${present.join(', ')}, which medlora cannot load: convert it to tokenizer.json ` +
            `(e.g. AutoTokenizer.from_pretrained(dir).save_pretrained(dir) in Python transformers)`
          : ''),
    );
  }
  if (typeof tj.model !== 'object' || tj.model === null) {
    throw new MedloraError(
      `${join(dir, source === 'tokenizer.json' ? 'tokenizer.json' : 'vocab.json')}: missing "model" section`,
    );
  }
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tj, cfg);
  } catch (e) {
    throw new MedloraError(`${tjPath}: cannot build the tokenizer (${(e as Error).message})`);
  }
  return new HfTokenizer(dir, source, tok, cfg, specialMap, genCfg, modelCfg);
}

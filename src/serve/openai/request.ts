// Validation of OpenAI-shaped request bodies (POST /v1/chat/completions and /v1/completions, the fields of OpenAI's
// API reference) into one CompletionRequest. Every field is checked and named in errors (`param`); features medlora
// does not implement (n > 1, penalties, logprobs, tools, logit_bias) are a 400 naming the field, never ignored.
import type { ChatMessage } from '../../tokenize/types.js';
import { MedloraError } from '../../util/errors.js';
import { HttpError } from '../http-error.js';
import type { ModelRegistry, ServedModel } from '../models.js';

export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema: Record<string, unknown>; strict: boolean };

export interface CompletionRequest {
  kind: 'chat' | 'text';
  entry: ServedModel;
  promptIds: number[];
  maxTokens: number;
  temperature: number;
  topP?: number;
  seed: number;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  responseFormat: ResponseFormat;
}

export interface CompletionLimits {
  /** most (and default) new tokens */
  maxNewTokens: number;
  /** most characters of prompt text (all messages together) */
  maxInputChars: number;
  /** most prompt tokens */
  maxPromptTokens: number;
}

const bad = (field: string, msg: string, code?: string): HttpError =>
  new HttpError(400, `${field}: ${msg}`, field, {}, code);

const COMMON = [
  'model',
  'max_tokens',
  'temperature',
  'top_p',
  'seed',
  'stop',
  'n',
  'stream',
  'stream_options',
  'user',
  'frequency_penalty',
  'presence_penalty',
  'logprobs',
  'logit_bias',
  'metadata',
  'store',
];
const CHAT_FIELDS = [
  ...COMMON,
  'messages',
  'max_completion_tokens',
  'response_format',
  'top_logprobs',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
];
const TEXT_FIELDS = [...COMMON, 'prompt', 'echo', 'best_of', 'suffix', 'response_format'];

function num(o: Record<string, unknown>, k: string, ok: (n: number) => boolean, what: string): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))
    throw bad(k, `expected ${what}, got ${JSON.stringify(v)}`);
  return v;
}

/** A field that must stay at its neutral value (medlora does not implement it). */
function neutral(o: Record<string, unknown>, k: string, isNeutral: (v: unknown) => boolean, what: string): void {
  if (o[k] !== undefined && o[k] !== null && !isNeutral(o[k]))
    throw bad(k, `not supported by medlora serve (${what})`, 'unsupported_parameter');
}

function countChars(s: string, field: string, left: number): number {
  let n = 0;
  for (const _ of s)
    if (++n > left)
      throw new HttpError(
        413,
        `${field}: the prompt is over the server's limit of characters (max_input_chars)`,
        field,
        {},
        'prompt_too_long',
      );
  return n;
}

function parseResponseFormat(v: unknown): ResponseFormat {
  if (v === undefined || v === null) return { type: 'text' };
  const o = v as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) throw bad('response_format', 'expected an object {"type": ...}');
  if (o.type === 'text') return { type: 'text' };
  if (o.type === 'json_object') return { type: 'json_object' };
  if (o.type === 'json_schema') {
    const js = o.json_schema as Record<string, unknown> | undefined;
    if (!js || typeof js !== 'object' || Array.isArray(js))
      throw bad('response_format.json_schema', 'expected an object {"name", "schema", "strict"}');
    if (typeof js.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(js.name))
      throw bad('response_format.json_schema.name', 'expected a name of letters, digits, _ or - (at most 64)');
    const schema = js.schema ?? {};
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
      throw bad('response_format.json_schema.schema', 'expected a JSON Schema object');
    if (js.strict !== undefined && js.strict !== null && typeof js.strict !== 'boolean')
      throw bad('response_format.json_schema.strict', 'expected true or false');
    return {
      type: 'json_schema',
      name: js.name,
      schema: schema as Record<string, unknown>,
      strict: js.strict === true,
    };
  }
  throw bad('response_format.type', `expected "text", "json_object" or "json_schema", got ${JSON.stringify(o.type)}`);
}

function messageText(m: unknown, i: number): ChatMessage {
  const f = `messages[${i}]`;
  if (!m || typeof m !== 'object' || Array.isArray(m)) throw bad(f, 'expected an object {"role", "content"}');
  const o = m as Record<string, unknown>;
  if (typeof o.role !== 'string' || !['system', 'developer', 'user', 'assistant'].includes(o.role)) {
    throw bad(`${f}.role`, `expected system, developer, user or assistant, got ${JSON.stringify(o.role)}`);
  }
  let content: string;
  if (typeof o.content === 'string') content = o.content;
  else if (Array.isArray(o.content)) {
    content = o.content
      .map((p, j) => {
        const part = p as Record<string, unknown>;
        if (!part || part.type !== 'text' || typeof part.text !== 'string')
          throw bad(`${f}.content[${j}]`, 'only {"type": "text", "text": ...} parts are supported');
        return part.text;
      })
      .join('');
  } else throw bad(`${f}.content`, 'expected a string or an array of text parts');
  // chat templates know system/user/assistant; OpenAI's newer "developer" role is a system message
  return { role: o.role === 'developer' ? 'system' : o.role, content };
}

/** Parse a chat or text completion body into a request (prompt rendered and tokenised for its model). */
export function parseCompletionRequest(
  kind: 'chat' | 'text',
  body: unknown,
  models: ModelRegistry,
  limits: CompletionLimits,
): CompletionRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('body', 'expected a JSON object');
  const o = body as Record<string, unknown>;
  const known = kind === 'chat' ? CHAT_FIELDS : TEXT_FIELDS;
  for (const k of Object.keys(o))
    if (!known.includes(k))
      throw bad(k, `unknown or unsupported field (known: ${known.join(', ')})`, 'unsupported_parameter');
  if (o.model === undefined) throw bad('model', `required (served: ${models.all.map((m) => m.name).join(', ')})`);
  const entry = models.get(o.model);

  const n = num(o, 'n', (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  if (n !== undefined && n !== 1)
    throw bad('n', 'only n = 1 is supported (send several requests instead)', 'unsupported_parameter');
  neutral(o, 'frequency_penalty', (v) => v === 0, 'only 0');
  neutral(o, 'presence_penalty', (v) => v === 0, 'only 0');
  neutral(o, 'logprobs', (v) => v === false, 'only false');
  neutral(o, 'top_logprobs', (v) => v === 0, 'only 0');
  neutral(o, 'logit_bias', (v) => typeof v === 'object' && Object.keys(v as object).length === 0, 'only {}');
  neutral(o, 'tools', (v) => Array.isArray(v) && v.length === 0, 'no tools');
  neutral(o, 'tool_choice', (v) => v === 'none', 'only "none"');
  neutral(o, 'echo', (v) => v === false, 'only false');
  neutral(o, 'best_of', (v) => v === 1, 'only 1');
  neutral(o, 'suffix', (v) => v === '', 'no suffix');

  const maxKey =
    o.max_completion_tokens !== undefined && o.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens =
    num(
      o,
      maxKey,
      (x) => Number.isInteger(x) && x >= 1 && x <= limits.maxNewTokens,
      `an integer from 1 to ${limits.maxNewTokens} (the server's max_new_tokens)`,
    ) ?? limits.maxNewTokens;
  const temperature = num(o, 'temperature', (x) => x >= 0 && x <= 2, 'a number from 0 to 2') ?? 1;
  const topP = num(o, 'top_p', (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  const seed = num(o, 'seed', (x) => Number.isSafeInteger(x), 'an integer') ?? 0;
  let stop: string[] = [];
  if (typeof o.stop === 'string') stop = [o.stop];
  else if (Array.isArray(o.stop)) {
    if (o.stop.length > 4 || !o.stop.every((s) => typeof s === 'string' && s !== ''))
      throw bad('stop', 'expected up to 4 non-empty strings');
    stop = o.stop as string[];
  } else if (o.stop !== undefined && o.stop !== null) throw bad('stop', 'expected a string or an array of strings');
  if (o.stream !== undefined && o.stream !== null && typeof o.stream !== 'boolean')
    throw bad('stream', 'expected true or false');
  const so = o.stream_options as Record<string, unknown> | undefined | null;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Object.keys(so).some((k) => k !== 'include_usage')))
    throw bad('stream_options', 'only {"include_usage": bool} is supported');
  const responseFormat = parseResponseFormat(o.response_format);

  let promptIds: number[];
  try {
    if (kind === 'chat') {
      if (!Array.isArray(o.messages) || o.messages.length === 0)
        throw bad('messages', 'required: a non-empty array of {"role", "content"}');
      const msgs = o.messages.map(messageText);
      let left = limits.maxInputChars;
      msgs.forEach((m, i) => {
        left -= countChars(m.content, `messages[${i}].content`, left);
      });
      if (!entry.tok.chatTemplate)
        throw bad(
          'model',
          `the model "${entry.name}" has no chat template (serve it with a chat template, or use /v1/completions)`,
        );
      const text = entry.tok.applyChatTemplate(msgs, { addGenerationPrompt: true });
      // the template writes BOS itself where the model wants one
      promptIds = entry.tok.encode(text, { addSpecialTokens: false });
    } else {
      let prompt = o.prompt;
      if (Array.isArray(prompt)) {
        if (prompt.length !== 1 || typeof prompt[0] !== 'string')
          throw bad('prompt', 'only one prompt string per request is supported');
        prompt = prompt[0];
      }
      if (typeof prompt !== 'string') throw bad('prompt', 'required: a string');
      countChars(prompt, 'prompt', limits.maxInputChars);
      promptIds = entry.tok.encode(prompt, { addSpecialTokens: true });
    }
  } catch (e) {
    if (e instanceof MedloraError) throw bad(kind === 'chat' ? 'messages' : 'prompt', e.message);
    throw e;
  }
  if (promptIds.length === 0) throw bad(kind === 'chat' ? 'messages' : 'prompt', 'encodes to no tokens');
  if (promptIds.length > limits.maxPromptTokens) {
    throw new HttpError(
      400,
      `${kind === 'chat' ? 'messages' : 'prompt'}: ${promptIds.length} tokens is over the server's limit of ${limits.maxPromptTokens} prompt tokens (max_prompt_tokens)`,
      kind === 'chat' ? 'messages' : 'prompt',
      {},
      'context_length_exceeded',
    );
  }
  return {
    kind,
    entry,
    promptIds,
    maxTokens,
    temperature,
    ...(topP !== undefined ? { topP } : {}),
    seed,
    stop,
    stream: o.stream === true,
    includeUsage: so?.include_usage === true,
    responseFormat,
  };
}

/**
 * Requests that may share a batch: same model entry, kind and generation settings, greedy (a sampled request runs
 * alone so its seed gives the same text whatever else is queued). null = never shares.
 */
export function completionKey(r: CompletionRequest): string | null {
  if (r.temperature > 0) return null;
  return JSON.stringify(['openai', r.entry.name, r.maxTokens, r.stop, r.responseFormat]);
}

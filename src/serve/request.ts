// Validation of a `POST /v1/extract` body into an extraction job; every error is a 400 naming the field.
import type { StructuredTask } from '../infer/parse.js';
import type { GenerationSettings } from '../infer/generate-answers.js';
import { HttpError } from './http-error.js';

/** Server-side limits a request is checked against. */
export interface RequestLimits {
  tasks: readonly StructuredTask[];
  /** most texts in one request */
  maxTexts: number;
  /** most characters (Unicode code points) in one text */
  maxInputChars: number;
  /** most new tokens per answer (also the default) */
  maxNewTokens: number;
}

/** Per-request generation settings (a subset of GenerationSettings; the rest are the server's). */
export type RequestSettings = Pick<
  GenerationSettings,
  'maxNewTokens' | 'temperature' | 'repetitionPenalty' | 'seed' | 'constrain'
> &
  Partial<Pick<GenerationSettings, 'topK' | 'topP'>>;

export interface ExtractRequest {
  task: StructuredTask;
  texts: string[];
  /** true when the body used "texts" (the answer lists results either way) */
  many: boolean;
  settings: RequestSettings;
  /** the `model` field (picked by the server: src/serve/models.ts) */
  model?: string;
}

const FIELDS = [
  'model',
  'task',
  'text',
  'texts',
  'max_new_tokens',
  'temperature',
  'top_k',
  'top_p',
  'repetition_penalty',
  'seed',
  'constrain',
];

const bad = (field: string, message: string): HttpError => new HttpError(400, `${field}: ${message}`, field);

function number(
  o: Record<string, unknown>,
  field: string,
  check: (n: number) => boolean,
  what: string,
): number | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v))
    throw bad(field, `expected ${what}, got ${JSON.stringify(v)}`);
  return v;
}

function checkText(v: unknown, field: string, limits: RequestLimits): string {
  if (typeof v !== 'string')
    throw bad(field, `expected a string, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  if (v.trim() === '') throw bad(field, 'must not be empty');
  let n = 0;
  for (const _ of v) if (++n > limits.maxInputChars) break;
  if (n > limits.maxInputChars)
    throw bad(field, `too long: more than ${limits.maxInputChars} characters (the server's limit, max_input_chars)`);
  return v;
}

/** Parse and check a request body (already JSON-decoded). */
export function parseExtractRequest(body: unknown, limits: RequestLimits): ExtractRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(
      400,
      'body: expected a JSON object {"task": ..., "text": ...} or {"task": ..., "texts": [...]}',
      'body',
    );
  }
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!FIELDS.includes(k)) throw bad(k, `unknown field (known: ${FIELDS.join(', ')})`);
  }
  // task: required unless the server serves exactly one
  let task: StructuredTask;
  if (o.task === undefined && limits.tasks.length === 1) task = limits.tasks[0]!;
  else if (typeof o.task !== 'string') throw bad('task', `required: one of ${limits.tasks.join(', ')}`);
  else if (!(limits.tasks as readonly string[]).includes(o.task))
    throw bad('task', `unknown task "${o.task}" (this server serves: ${limits.tasks.join(', ')})`);
  else task = o.task as StructuredTask;

  if (o.text !== undefined && o.texts !== undefined) throw bad('texts', 'give "text" or "texts", not both');
  let texts: string[];
  let many = false;
  if (o.texts !== undefined) {
    if (!Array.isArray(o.texts)) throw bad('texts', 'expected an array of strings');
    if (o.texts.length === 0) throw bad('texts', 'must hold at least one text');
    if (o.texts.length > limits.maxTexts)
      throw bad(
        'texts',
        `too many texts: ${o.texts.length} (at most ${limits.maxTexts}, the server's limit, max_texts)`,
      );
    texts = o.texts.map((t, i) => checkText(t, `texts[${i}]`, limits));
    many = true;
  } else if (o.text !== undefined) {
    texts = [checkText(o.text, 'text', limits)];
  } else {
    throw bad('text', 'required: "text" (a string) or "texts" (an array of strings)');
  }

  const maxNewTokens =
    number(
      o,
      'max_new_tokens',
      (n) => Number.isInteger(n) && n >= 1 && n <= limits.maxNewTokens,
      `an integer from 1 to ${limits.maxNewTokens} (the server's limit, max_new_tokens)`,
    ) ?? limits.maxNewTokens;
  const temperature = number(o, 'temperature', (n) => n >= 0 && n <= 10, 'a number from 0 (greedy) to 10') ?? 0;
  const topK = number(o, 'top_k', (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
  const topP = number(o, 'top_p', (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  const repetitionPenalty = number(o, 'repetition_penalty', (n) => n > 0 && n <= 10, 'a number in (0, 10]') ?? 1;
  const seed = number(o, 'seed', (n) => Number.isSafeInteger(n) && n >= 0, 'a non-negative integer') ?? 0;
  if (o.constrain !== undefined && typeof o.constrain !== 'boolean')
    throw bad('constrain', `expected true or false, got ${JSON.stringify(o.constrain)}`);
  const constrain = o.constrain !== false;
  const settings: RequestSettings = {
    maxNewTokens,
    temperature,
    repetitionPenalty,
    seed,
    constrain,
    ...(topK !== undefined ? { topK } : {}),
    ...(topP !== undefined ? { topP } : {}),
  };
  if (o.model !== undefined && typeof o.model !== 'string')
    throw bad('model', 'expected a string (a served model name, see GET /v1/models)');
  return { task, texts, many, settings, ...(typeof o.model === 'string' ? { model: o.model } : {}) };
}

/**
 * The batching key (src/serve/queue.ts): requests of one task with identical settings may share a batch. Greedy
 * decoding ignores the seed, so it is left out; sampled requests never share (null), so a seeded request gives the
 * same answer whatever else is queued.
 */
export function batchKey(r: ExtractRequest): string | null {
  if (r.settings.temperature > 0) return null;
  const { seed: _seed, ...rest } = r.settings;
  return JSON.stringify([r.model ?? null, r.task, Object.entries(rest).sort(([a], [b]) => a.localeCompare(b))]);
}

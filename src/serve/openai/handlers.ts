// The OpenAI-compatible routes: POST /v1/chat/completions, POST /v1/completions (whole answers or server-sent-event
// streams) and GET /v1/models, shaped as OpenAI's API reference documents them (what the `openai` clients parse).
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MedloraError } from '../../util/errors.js';
import { HttpError } from '../http-error.js';
import { readJson, sendJson } from '../http.js';
import type { ModelRegistry } from '../models.js';
import { SseWriter } from '../sse.js';
import { completionKey, parseCompletionRequest, type CompletionLimits, type CompletionRequest } from './request.js';
import { cutAtStop, decodeFor, type CompletionJob, type CompletionResult } from './run.js';
import { formatConstraint } from './response-format.js';

export interface OpenAiContext {
  models: ModelRegistry;
  limits: CompletionLimits;
  maxBodyBytes: number;
  /** queue a job (batched with compatible ones; see src/serve/queue.ts) */
  submit(key: string | null, job: CompletionJob): Promise<CompletionResult>;
}

export interface HandledCompletion {
  model: string;
  promptTokens: number;
  completionTokens: number;
}

/** GET /v1/models */
export function handleModels(ctx: OpenAiContext, res: ServerResponse, head: boolean): void {
  sendJson(
    res,
    200,
    {
      object: 'list',
      data: ctx.models.all.map((m) => ({
        id: m.name,
        object: 'model',
        created: ctx.models.created,
        owned_by: 'medlora',
        // medlora's own additions: what the entry is (vLLM lists LoRA modules with their parent the same way)
        parent: m.adapterDir ? (ctx.models.all.find((x) => x.adapterDir === null)?.name ?? null) : null,
        adapter: m.adapterDir,
        tasks: m.tasks ?? null,
        prompt_style: m.promptStyle ?? 'alpaca',
      })),
    },
    {},
    head,
  );
}

const usage = (r: CompletionResult): Record<string, number> => ({
  prompt_tokens: r.promptTokens,
  completion_tokens: r.ids.length,
  total_tokens: r.promptTokens + r.ids.length,
});

/** POST /v1/chat/completions and /v1/completions. */
export async function handleCompletion(
  kind: 'chat' | 'text',
  ctx: OpenAiContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<HandledCompletion> {
  const body = await readJson(req, ctx.maxBodyBytes);
  const r = parseCompletionRequest(kind, body, ctx.models, ctx.limits);
  // build (and so check) the format's constraint before queueing: an unsupported schema keyword is a 400 now
  formatConstraint(r.responseFormat, r.entry.tok);
  const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
  const created = Math.floor(Date.now() / 1000);
  const base = {
    id,
    object: kind === 'chat' ? 'chat.completion' : 'text_completion',
    created,
    model: r.entry.name,
    system_fingerprint: null,
  };
  const gone = (): boolean => res.destroyed || (req.destroyed && !req.complete);
  if (!r.stream) {
    const out = await submit(ctx, r, { req: r, cancelled: () => res.destroyed });
    const choice =
      kind === 'chat'
        ? {
            index: 0,
            message: { role: 'assistant', content: out.text, refusal: null },
            logprobs: null,
            finish_reason: out.finishReason,
          }
        : { index: 0, text: out.text, logprobs: null, finish_reason: out.finishReason };
    sendJson(res, 200, { ...base, choices: [choice], usage: usage(out) });
    return { model: r.entry.name, promptTokens: out.promptTokens, completionTokens: out.ids.length };
  }
  // streaming: chunks as tokens are chosen; text is held back while it could still be the start of a stop string or
  // ends inside a multi-byte character, so the concatenated deltas always equal the final text
  const sse = new SseWriter(res);
  const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const chunk = (
    delta: string | null,
    finishReason: string | null,
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> => ({
    ...base,
    object: chunkObject,
    choices:
      kind === 'chat'
        ? [
            {
              index: 0,
              delta: delta === null ? {} : { ...(extra.role ? { role: 'assistant' } : {}), content: delta },
              logprobs: null,
              finish_reason: finishReason,
            },
          ]
        : [{ index: 0, text: delta ?? '', logprobs: null, finish_reason: finishReason }],
  });
  if (kind === 'chat') sse.data(chunk('', null, { role: true }));
  let sent = '';
  const hold = Math.max(0, ...r.stop.map((s) => s.length - 1));
  const emit = (text: string): void => {
    if (text.length > sent.length && text.startsWith(sent)) {
      sse.data(chunk(text.slice(sent.length), null));
      sent = text;
    }
  };
  const out = await submit(ctx, r, {
    req: r,
    cancelled: gone,
    onToken: (ids) => {
      if (sse.closed) return;
      let t = decodeFor(r, ids);
      if (r.stop.length) {
        const c = cutAtStop(t, r.stop);
        t = c.stopped ? c.text : t.slice(0, Math.max(0, t.length - hold));
      }
      emit(t.replace(/\uFFFD+$/, ''));
    },
  });
  emit(out.text);
  sse.data(chunk(null, out.finishReason));
  if (r.includeUsage) sse.data({ ...base, object: chunkObject, choices: [], usage: usage(out) });
  sse.done();
  return { model: r.entry.name, promptTokens: out.promptTokens, completionTokens: out.ids.length };
}

async function submit(ctx: OpenAiContext, r: CompletionRequest, job: CompletionJob): Promise<CompletionResult> {
  try {
    return await ctx.submit(completionKey(r), job);
  } catch (e) {
    // errors of the request's own settings (e.g. max_tokens below a constrained answer's minimum) are the client's
    if (e instanceof MedloraError) throw new HttpError(400, e.message, undefined);
    throw e;
  }
}

// The HTTP server over one base model and any number of adapters (src/serve/models.ts): medlora's own
// POST /v1/extract, GET /v1/tasks, GET /health and GET / (the web page), and the OpenAI-compatible
// POST /v1/chat/completions, POST /v1/completions and GET /v1/models (src/serve/openai/). This file only wires:
// routes, API key (auth.ts), admission limit (slots.ts), the one queue (queue.ts) whose runner dispatches to the
// extract or completion runner; each endpoint lives in its own handler file. Every failure is a JSON error with an
// HTTP status (OpenAI-shaped, http-error.ts) and the server keeps running. `close()` stops accepting, finishes every
// accepted request, then resolves.
// Over ~400 lines on purpose: the routing table and its option checks; handlers live in their own files.
//
// HTTP LAYER: node:http, kept on purpose. The server has seven fixed routes (a table lookup), validates bodies with
// hand-written checks that name the field (a schema library would not produce OpenAI's error shape or our messages
// any better), streams with plain res.write (SSE needs no framework), and its limits (body bytes, texts, tokens,
// concurrency) are a few lines each. fastify or hono would add a dependency tree to audit for none of that, and
// generation runs synchronously on the event loop, so a faster router buys nothing measurable.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { CausalLM } from '../model/causal-lm.js';
import { ownParameterBytes } from '../model/share.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { StructuredTask } from '../infer/parse.js';
import { structuredTaskNames } from '../data/tasks/index.js';
import type { PromptStyle } from '../data/prompt.js';
import { engineInfo, getNumThreads } from '../tensor/index.js';
import { MedloraError, fieldError, prefixed as withPrefix } from '../util/errors.js';
import { HttpError, errorBody } from './http-error.js';
import { send, sendJson } from './http.js';
import { BatchQueue, type BatchInfo } from './queue.js';
import type { RequestLimits } from './request.js';
import { taskInfos } from './tasks.js';
import { pageHtml } from './page.js';
import { bearerAuth } from './auth.js';
import { Slots } from './slots.js';
import { ModelRegistry, type ServedModel } from './models.js';
import { handleExtract, runExtract, type ExtractJob, type ServedResult } from './extract-handler.js';
import { handleCompletion, handleModels } from './openai/handlers.js';
import { runCompletions, type CompletionJob, type CompletionResult } from './openai/run.js';

export type { ServedResult } from './extract-handler.js';
export type { ServedModel } from './models.js';

export interface ServeOptions {
  model: CausalLM;
  tok: TextTokenizer;
  /** the default model's name in answers, /health and `model` fields (e.g. the model folder's name) */
  modelName: string;
  /** the default model's adapter as shown in answers (null: none) */
  adapterName?: string | null;
  /** further models served beside the default one (e.g. the base and each --adapter name=path) */
  extraModels?: ServedModel[];
  /** tasks served (default: every structured task) */
  tasks?: StructuredTask[];
  /** the default model's own tasks (its training contract's; default: the served tasks) */
  modelTasks?: StructuredTask[];
  host?: string;
  /** 0 = an ephemeral port (see the handle's `port`) */
  port?: number;
  /** most texts generated together in one batch (default 8) */
  maxBatch?: number;
  /** most (and default) new tokens per answer (default 256) */
  maxNewTokens?: number;
  /** most texts in one request (default 64) */
  maxTexts?: number;
  /** most characters in one text or prompt (default 20000) */
  maxInputChars?: number;
  /** most prompt tokens of a completion request (default 4096) */
  maxPromptTokens?: number;
  /** largest request body in bytes (default 1 MiB); larger bodies get 413 */
  maxBodyBytes?: number;
  /** most generating requests accepted at once, queued or running (default 64); more get 429 */
  maxConcurrent?: number;
  /** when set, every /v1 route needs "Authorization: Bearer <apiKey>" */
  apiKey?: string;
  /** how long the queue waits for companions before starting a batch (default 5 ms) */
  batchWindowMs?: number;
  /** prompt style and input shortening used in training (the default model's) */
  promptStyle?: PromptStyle;
  maxLength?: number;
  /** per task, the instruction training used when it is not the built-in one (an adapter's training contract) */
  instructions?: Record<string, string>;
  /** called once per answered request */
  onRequest?: (e: RequestLog) => void;
}

export interface RequestLog {
  method: string;
  path: string;
  status: number;
  ms: number;
  model?: string;
  texts?: number;
  batch?: BatchInfo;
  prompt_tokens?: number;
  completion_tokens?: number;
  error?: string;
}

export interface ServeHandle {
  server: Server;
  host: string;
  port: number;
  /** base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** stop accepting, finish accepted requests, close connections */
  close(): Promise<void>;
  /** the counters /health reports */
  stats(): ServeStats;
}

export interface ServeStats {
  requests: number;
  extract_requests: number;
  completion_requests: number;
  texts: number;
  errors: number;
  batches: number;
  queued: number;
  /** generating requests accepted and not yet closed (queued, running or streaming) */
  in_flight: number;
}

type Job = { key: string | null; size: number } & (
  { kind: 'extract'; job: ExtractJob } | { kind: 'openai'; job: CompletionJob }
);

const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  maxBatch: 8,
  maxNewTokens: 256,
  maxTexts: 64,
  maxInputChars: 20000,
  maxPromptTokens: 4096,
  maxBodyBytes: 1 << 20,
  maxConcurrent: 64,
  batchWindowMs: 5,
};

/** Routes and the methods they allow (anything else on a known path is 405). */
const ROUTES: Record<string, string[]> = {
  '/': ['GET', 'HEAD'],
  '/health': ['GET', 'HEAD'],
  '/v1/tasks': ['GET', 'HEAD'],
  '/v1/extract': ['POST'],
  '/v1/models': ['GET', 'HEAD'],
  '/v1/chat/completions': ['POST'],
  '/v1/completions': ['POST'],
};
const GENERATING = new Set(['/v1/extract', '/v1/chat/completions', '/v1/completions']);

/** Start serving; resolves once listening. */
export async function createServer(o: ServeOptions): Promise<ServeHandle> {
  const opts = {
    ...DEFAULTS,
    ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)),
  } as typeof DEFAULTS & ServeOptions;
  // errors name the option as ServeOptions spells it; error.field is its snake_case key (the CLI names its flag)
  const posInt = (name: keyof ServeOptions & string): void => {
    const v = opts[name] as number;
    const field = name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if (!Number.isInteger(v) || v < 1) throw fieldError(field, `serve: ${name} must be a positive integer, got ${v}`);
  };
  posInt('maxBatch');
  posInt('maxNewTokens');
  posInt('maxTexts');
  posInt('maxInputChars');
  posInt('maxBodyBytes');
  posInt('maxPromptTokens');
  posInt('maxConcurrent');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)
    throw fieldError('port', `serve: port must be 0..65535, got ${opts.port}`);
  const tasks = opts.tasks ?? structuredTaskNames();
  if (tasks.length === 0) throw new MedloraError('serve: no tasks to serve');
  const limits: RequestLimits = {
    tasks,
    maxTexts: opts.maxTexts,
    maxInputChars: opts.maxInputChars,
    maxNewTokens: opts.maxNewTokens,
  };
  const infos = taskInfos(tasks).map((t) =>
    opts.instructions?.[t.name] !== undefined ? { ...t, instruction: opts.instructions[t.name]! } : t,
  );
  let models: ModelRegistry;
  try {
    models = new ModelRegistry(
      [
        {
          name: opts.modelName,
          model: opts.model,
          tok: opts.tok,
          adapterDir: opts.adapterName ?? null,
          ...(opts.promptStyle ? { promptStyle: opts.promptStyle } : {}),
          ...(opts.maxLength !== undefined ? { maxLength: opts.maxLength } : {}),
          ...(opts.instructions ? { instructions: opts.instructions } : {}),
          ...(opts.modelTasks?.length ? { tasks: opts.modelTasks } : {}),
        },
        ...(opts.extraModels ?? []),
      ],
      opts.modelName,
    );
  } catch (e) {
    throw e instanceof MedloraError ? withPrefix('serve: ', e) : new MedloraError(`serve: ${(e as Error).message}`);
  }
  const auth = opts.apiKey !== undefined ? bearerAuth(opts.apiKey) : undefined;
  const slots = new Slots(opts.maxConcurrent);
  const started = Date.now();
  const engine = (() => {
    const e = engineInfo();
    return { torch_version: e.torchVersion, cuda: e.compiledWithCuda, mkl: e.hasMKL, openmp: e.hasOpenMP };
  })();
  const counters = { requests: 0, extract_requests: 0, completion_requests: 0, texts: 0, errors: 0 };

  // the one place models run: all jobs of a batch share kind, model entry and settings (the queue key), so a batch
  // never mixes adapters
  const queue = new BatchQueue<Job, ServedResult[] | CompletionResult>(
    (jobs) => {
      if (jobs[0]!.kind === 'extract')
        return runExtract(
          jobs.map((j) => (j as Extract<Job, { kind: 'extract' }>).job),
          opts.maxBatch,
        );
      return runCompletions(jobs.map((j) => (j as Extract<Job, { kind: 'openai' }>).job));
    },
    { maxBatch: opts.maxBatch, windowMs: opts.batchWindowMs },
  );
  const prefixed = (kind: string, key: string | null): string | null => (key === null ? null : `${kind}:${key}`);
  const extractCtx = {
    models,
    limits,
    maxBodyBytes: opts.maxBodyBytes,
    submit: async (key: string | null, size: number, job: ExtractJob) => {
      const r = await queue.push({ key: prefixed('extract', key), size, kind: 'extract', job });
      return { result: r.result as ServedResult[], batch: r.batch };
    },
  };
  const openaiCtx = {
    models,
    maxBodyBytes: opts.maxBodyBytes,
    limits: {
      maxNewTokens: opts.maxNewTokens,
      maxInputChars: opts.maxInputChars,
      maxPromptTokens: opts.maxPromptTokens,
    },
    submit: async (key: string | null, job: CompletionJob) =>
      (await queue.push({ key: prefixed('openai', key), size: 1, kind: 'openai', job })).result as CompletionResult,
  };

  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  function health(): unknown {
    return {
      status: closing ? 'stopping' : 'ok',
      model: opts.modelName,
      adapter: opts.adapterName ?? null,
      tasks,
      // own_weights_mb: the weights a model holds itself; an adapter over the shared base holds only its own tensors
      models: models.all.map((m) => ({
        name: m.name,
        adapter: m.adapterDir,
        own_weights_mb: Math.round(ownParameterBytes(m.model) / 1048.576) / 1000,
      })),
      prompt_style: opts.promptStyle ?? 'alpaca',
      max_length: opts.maxLength ?? null,
      engine: { ...engine, threads: getNumThreads() },
      // where the models compute (medlora serve --device)
      device: opts.model.device ?? 'cpu',
      uptime_s: Math.round((Date.now() - started) / 100) / 10,
      requests_served: counters.requests,
      ...stats(),
      limits: {
        max_batch: opts.maxBatch,
        max_new_tokens: opts.maxNewTokens,
        max_texts: opts.maxTexts,
        max_input_chars: opts.maxInputChars,
        max_prompt_tokens: opts.maxPromptTokens,
        max_body_bytes: opts.maxBodyBytes,
        max_concurrent: opts.maxConcurrent,
        api_key: auth !== undefined,
      },
    };
  }

  function stats(): ServeStats {
    return {
      ...counters,
      batches: queue.batches,
      queued: queue.waiting + (queue.busy ? 1 : 0),
      in_flight: slots.inUse,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    let path = '/';
    let log: Partial<RequestLog> = {};
    let status = 500;
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      path = url.pathname;
      const allowed = ROUTES[path];
      if (!allowed)
        throw new HttpError(
          404,
          `no route ${path} (routes: ${Object.entries(ROUTES)
            .map(([p, m]) => `${m[0]} ${p}`)
            .join(', ')})`,
          undefined,
          {},
          'unknown_url',
        );
      if (!allowed.includes(method))
        throw new HttpError(
          405,
          `${method} ${path} is not allowed (use ${allowed.filter((m) => m !== 'HEAD').join(', ')})`,
          undefined,
          { Allow: allowed.join(', ') },
        );
      const head = method === 'HEAD';
      if (auth && path.startsWith('/v1/')) auth(req);
      if (path === '/health') {
        status = 200;
        sendJson(res, 200, health(), {}, head);
      } else if (path === '/v1/tasks') {
        status = 200;
        sendJson(res, 200, { tasks: infos }, {}, head);
      } else if (path === '/v1/models') {
        status = 200;
        handleModels(openaiCtx, res, head);
      } else if (path === '/') {
        const nonce = randomBytes(16).toString('base64');
        status = 200;
        send(
          res,
          200,
          pageHtml(infos, nonce, {
            model: opts.modelName,
            adapter: opts.adapterName ?? null,
            models: models.all.map((m) => m.name),
            apiKey: auth !== undefined,
          }),
          'text/html; charset=utf-8',
          {
            // self-contained page: nothing but its own inline script / style and calls back to this server
            'Content-Security-Policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'`,
            'X-Content-Type-Options': 'nosniff',
          },
          head,
        );
      } else if (GENERATING.has(path)) {
        if (closing) throw new HttpError(503, 'the server is shutting down', undefined, { Connection: 'close' });
        slots.take(res);
        if (path === '/v1/extract') {
          counters.extract_requests++;
          const r = await handleExtract(extractCtx, req);
          counters.texts += r.texts;
          status = 200;
          log = { texts: r.texts, batch: r.batch, model: (r.body as { model: string }).model };
          sendJson(res, 200, r.body);
        } else {
          counters.completion_requests++;
          const r = await handleCompletion(path === '/v1/chat/completions' ? 'chat' : 'text', openaiCtx, req, res);
          status = 200;
          log = { model: r.model, prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens };
        }
      }
    } catch (e) {
      const he =
        e instanceof HttpError ? e : new HttpError(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
      status = he.status;
      counters.errors++;
      log = { ...log, error: he.message };
      // an unread (too large) body: answer, then close the connection rather than read the rest
      const headers = he.status === 413 ? { ...he.headers, Connection: 'close' } : he.headers;
      if (!res.headersSent) sendJson(res, he.status, errorBody(he), headers);
      else res.destroy();
    } finally {
      counters.requests++;
      opts.onRequest?.({ method, path, status, ms: Math.round((performance.now() - t0) * 10) / 10, ...log });
    }
  }

  const server = createHttpServer((req, res) => {
    inFlight++;
    res.on('close', () => {
      inFlight--;
      if (inFlight === 0) drained?.();
    });
    handle(req, res).catch((e: unknown) => {
      // handle() answers its own errors; this only guards against a failure while answering
      if (!res.headersSent) sendJson(res, 500, errorBody(new HttpError(500, String(e))));
      else res.destroy();
    });
  });
  server.on('clientError', (err, socket) => {
    // malformed HTTP: answer 400 when the socket still can be written
    if (socket.writable)
      socket.end(
        'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n' +
          `${JSON.stringify(errorBody(new HttpError(400, `bad HTTP request: ${err.message}`)))}\n`,
      );
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new MedloraError(
          `serve: cannot listen on ${opts.host}:${opts.port}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`,
        ),
      ),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const hostForUrl = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let closed: Promise<void> | undefined;
  function close(): Promise<void> {
    closed ??= (async () => {
      closing = true;
      const done = new Promise<void>((r) => server.close(() => r()));
      await queue.idle();
      if (inFlight > 0)
        await new Promise<void>((r) => {
          drained = r;
        });
      server.closeIdleConnections();
      await done;
    })();
    return closed;
  }

  return { server, host: addr.address, port: addr.port, url: `http://${hostForUrl}:${addr.port}`, close, stats };
}

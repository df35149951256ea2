// The HTTP API over one loaded extractor (node:http only): POST /v1/extract, GET /v1/tasks, GET /health and GET / (the
// web page). Requests are validated (src/serve/request.ts), queued and run one batch at a time (src/serve/queue.ts);
// every failure is a JSON error with an HTTP status and the server keeps running. `close()` stops accepting, finishes
// every accepted request, then resolves.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import { extract, type ExtractResult } from '../eval/extract.js';
import type { StructuredTask } from '../eval/parse.js';
import { structuredTaskNames } from '../data/tasks/index.js';
import type { PromptStyle } from '../data/prompt.js';
import { engineInfo, getNumThreads } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';
import { HttpError } from './http-error.js';
import { BatchQueue, type BatchInfo } from './queue.js';
import { batchKey, parseExtractRequest, type ExtractRequest, type RequestLimits } from './request.js';
import { taskInfos } from './tasks.js';
import { pageHtml } from './page.js';

export interface ServeOptions {
  model: CausalLM;
  tok: TextTokenizer;
  /** shown in answers and /health (e.g. the model folder's name) */
  modelName: string;
  adapterName?: string | null;
  /** tasks served (default: every structured task) */
  tasks?: StructuredTask[];
  host?: string;
  /** 0 = an ephemeral port (see the handle's `port`) */
  port?: number;
  /** most texts generated together in one batch (default 8) */
  maxBatch?: number;
  /** most (and default) new tokens per answer (default 256) */
  maxNewTokens?: number;
  /** most texts in one request (default 64) */
  maxTexts?: number;
  /** most characters in one text (default 20000) */
  maxInputChars?: number;
  /** largest request body in bytes (default 1 MiB); larger bodies get 413 */
  maxBodyBytes?: number;
  /** how long the queue waits for companions before starting a batch (default 5 ms) */
  batchWindowMs?: number;
  /** prompt style and input shortening used in training */
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
  texts?: number;
  batch?: BatchInfo;
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
  texts: number;
  errors: number;
  batches: number;
  queued: number;
}

interface Job {
  key: string | null;
  size: number;
  req: ExtractRequest;
}

/** One result of POST /v1/extract (documented in the serve command's help). */
export interface ServedResult {
  task: StructuredTask;
  input: string;
  result: unknown;
  entities: Array<{ text: string; role: string; spans: Array<[number, number]> }>;
  raw: string;
  parsed: boolean;
  unparsed: string[];
  /** eos, length (max_new_tokens reached) or max_positions (the model's position limit reached) */
  finish_reason: string;
  /** the answer was cut (finish_reason length or max_positions) rather than ended by the model */
  truncated: boolean;
}

const DEFAULTS = { host: '127.0.0.1', port: 8080, maxBatch: 8, maxNewTokens: 256, maxTexts: 64, maxInputChars: 20000, maxBodyBytes: 1 << 20, batchWindowMs: 5 };

/** Routes and the methods they allow (anything else on a known path is 405). */
const ROUTES: Record<string, string[]> = { '/': ['GET', 'HEAD'], '/health': ['GET', 'HEAD'], '/v1/tasks': ['GET', 'HEAD'], '/v1/extract': ['POST'] };

function served(r: ExtractResult, input: string): ServedResult {
  return {
    task: r.task, input, result: r.result,
    entities: r.entities.map((e) => ({ text: e.text, role: e.role, spans: e.occurrences })),
    raw: r.output, parsed: r.unparsed.length === 0, unparsed: r.unparsed, finish_reason: r.finish_reason, truncated: r.truncated,
  };
}

/** Read a body up to `limit` bytes; over it, a 413. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, `body: ${declared} bytes is over the server's limit of ${limit} bytes (--max-body-bytes)`, 'body'));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      n += c.length;
      if (n > limit) { over = true; reject(new HttpError(413, `body: over the server's limit of ${limit} bytes (--max-body-bytes)`, 'body')); return; }
      chunks.push(c);
    });
    req.on('end', () => { if (!over) resolve(Buffer.concat(chunks).toString('utf8')); });
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: string, type: string, headers: Record<string, string> = {}, head = false): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), 'Cache-Control': 'no-store', ...headers });
  res.end(head ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}, head = false): void {
  send(res, status, `${JSON.stringify(value)}\n`, 'application/json; charset=utf-8', headers, head);
}

/** Start serving; resolves once listening. */
export async function createServer(o: ServeOptions): Promise<ServeHandle> {
  const opts = { ...DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS & ServeOptions;
  const posInt = (v: number, name: string): void => {
    if (!Number.isInteger(v) || v < 1) throw new MedloraError(`serve: ${name} must be a positive integer, got ${v}`);
  };
  posInt(opts.maxBatch, '--max-batch');
  posInt(opts.maxNewTokens, '--max-new-tokens');
  posInt(opts.maxTexts, '--max-texts');
  posInt(opts.maxInputChars, '--max-input-chars');
  posInt(opts.maxBodyBytes, '--max-body-bytes');
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new MedloraError(`serve: --port must be 0..65535, got ${opts.port}`);
  const tasks = opts.tasks ?? structuredTaskNames();
  if (tasks.length === 0) throw new MedloraError('serve: no tasks to serve');
  const limits: RequestLimits = { tasks, maxTexts: opts.maxTexts, maxInputChars: opts.maxInputChars, maxNewTokens: opts.maxNewTokens };
  const infos = taskInfos(tasks).map((t) => (opts.instructions?.[t.name] !== undefined ? { ...t, instruction: opts.instructions[t.name]! } : t));
  const started = Date.now();
  const engine = (() => {
    const e = engineInfo();
    return { torch_version: e.torchVersion, cuda: e.compiledWithCuda, mkl: e.hasMKL, openmp: e.hasOpenMP };
  })();
  const counters = { requests: 0, extract_requests: 0, texts: 0, errors: 0 };

  // the one place the model runs: all jobs of a batch share task and settings (queue key)
  const queue = new BatchQueue<Job, ServedResult[]>((jobs) => {
    const first = jobs[0]!.req;
    const inputs = jobs.flatMap((j, ji) => j.req.texts.map((text, ti) => ({ id: `${ji}:${ti}`, text })));
    const { results } = extract(opts.model, opts.tok, first.task, inputs, {
      ...first.settings, batchSize: opts.maxBatch, promptStyle: opts.promptStyle ?? 'alpaca',
      ...(opts.maxLength !== undefined ? { maxLength: opts.maxLength } : {}),
      ...(opts.instructions ? { instructions: opts.instructions } : {}),
    });
    let k = 0;
    return jobs.map((j) => j.req.texts.map((text) => served(results[k++]!, text)));
  }, { maxBatch: opts.maxBatch, windowMs: opts.batchWindowMs });

  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  async function handleExtract(req: IncomingMessage): Promise<{ body: unknown; texts: number; batch: BatchInfo }> {
    const raw = await readBody(req, opts.maxBodyBytes);
    let body: unknown;
    try { body = JSON.parse(raw); } catch (e) {
      throw new HttpError(400, `body: invalid JSON (${(e as Error).message})`, 'body');
    }
    const t0 = performance.now();
    const r = parseExtractRequest(body, limits);
    let out: { result: ServedResult[]; batch: BatchInfo };
    try {
      out = await queue.push({ key: batchKey(r), size: r.texts.length, req: r });
    } catch (e) {
      // errors from the request's own settings (e.g. max_new_tokens below a constrained answer's minimum) are the
      // client's; the generation layer names CLI flags, so they are renamed to the request's fields
      if (e instanceof MedloraError) throw new HttpError(400, e.message.replace(/--max-new-tokens/g, 'max_new_tokens').replace(/--temperature/g, 'temperature').replace(/--repetition-penalty/g, 'repetition_penalty'));
      throw e;
    }
    counters.texts += r.texts.length;
    return {
      body: { results: out.result, model: opts.modelName, adapter: opts.adapterName ?? null, elapsed_ms: Math.round((performance.now() - t0) * 10) / 10, batch: out.batch },
      texts: r.texts.length, batch: out.batch,
    };
  }

  function health(): unknown {
    return {
      status: closing ? 'stopping' : 'ok', model: opts.modelName, adapter: opts.adapterName ?? null, tasks,
      prompt_style: opts.promptStyle ?? 'alpaca', max_length: opts.maxLength ?? null,
      engine: { ...engine, threads: getNumThreads() }, uptime_s: Math.round((Date.now() - started) / 100) / 10,
      requests_served: counters.requests, ...stats(),
      limits: { max_batch: opts.maxBatch, max_new_tokens: opts.maxNewTokens, max_texts: opts.maxTexts, max_input_chars: opts.maxInputChars, max_body_bytes: opts.maxBodyBytes },
    };
  }

  function stats(): ServeStats {
    return { ...counters, batches: queue.batches, queued: queue.waiting + (queue.busy ? 1 : 0) };
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
      if (!allowed) throw new HttpError(404, `no route ${path} (routes: GET /, GET /health, GET /v1/tasks, POST /v1/extract)`);
      if (!allowed.includes(method)) throw new HttpError(405, `${method} ${path} is not allowed (use ${allowed.filter((m) => m !== 'HEAD').join(', ')})`, undefined, { Allow: allowed.join(', ') });
      const head = method === 'HEAD';
      if (path === '/health') { status = 200; sendJson(res, 200, health(), {}, head); }
      else if (path === '/v1/tasks') { status = 200; sendJson(res, 200, { tasks: infos }, {}, head); }
      else if (path === '/') {
        const nonce = randomBytes(16).toString('base64');
        status = 200;
        send(res, 200, pageHtml(infos, nonce, { model: opts.modelName, adapter: opts.adapterName ?? null }), 'text/html; charset=utf-8', {
          // self-contained page: nothing but its own inline script / style and calls back to this server
          'Content-Security-Policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'`,
          'X-Content-Type-Options': 'nosniff',
        }, head);
      } else {
        if (closing) throw new HttpError(503, 'the server is shutting down', undefined, { Connection: 'close' });
        counters.extract_requests++;
        const r = await handleExtract(req);
        status = 200;
        log = { texts: r.texts, batch: r.batch };
        sendJson(res, 200, r.body);
      }
    } catch (e) {
      const he = e instanceof HttpError ? e : new HttpError(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
      status = he.status;
      counters.errors++;
      log = { ...log, error: he.message };
      // an unread (too large) body: answer, then close the connection rather than read the rest
      const headers = he.status === 413 ? { ...he.headers, Connection: 'close' } : he.headers;
      if (!res.headersSent) sendJson(res, he.status, { error: { status: he.status, message: he.message, ...(he.field ? { field: he.field } : {}) } }, headers);
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
      if (!res.headersSent) sendJson(res, 500, { error: { status: 500, message: String(e) } });
      else res.destroy();
    });
  });
  server.on('clientError', (err, socket) => {
    // malformed HTTP: answer 400 when the socket still can be written
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n' +
      `${JSON.stringify({ error: { status: 400, message: `bad HTTP request: ${err.message}` } })}\n`);
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new MedloraError(`serve: cannot listen on ${opts.host}:${opts.port}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`)));
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
      if (inFlight > 0) await new Promise<void>((r) => { drained = r; });
      server.closeIdleConnections();
      await done;
    })();
    return closed;
  }

  return { server, host: addr.address, port: addr.port, url: `http://${hostForUrl}:${addr.port}`, close, stats };
}

// Small node:http helpers shared by the handlers: bounded body reading (413 past the limit), JSON parsing with a 400,
// and plain / JSON answers that never cache.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './http-error.js';

/** Read a body up to `limit` bytes; over it, a 413. */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(
      new HttpError(
        413,
        `body: ${declared} bytes is over the server's limit of ${limit} bytes (max_body_bytes)`,
        'body',
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      n += c.length;
      if (n > limit) {
        over = true;
        reject(new HttpError(413, `body: over the server's limit of ${limit} bytes (max_body_bytes)`, 'body'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

/** Read and JSON-decode a body (400 on bad JSON). */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const raw = await readBody(req, limit);
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new HttpError(400, `body: invalid JSON (${(e as Error).message})`, 'body');
  }
}

export function send(
  res: ServerResponse,
  status: number,
  body: string,
  type: string,
  headers: Record<string, string> = {},
  head = false,
): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(head ? undefined : body);
}

export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
  head = false,
): void {
  send(res, status, `${JSON.stringify(value)}\n`, 'application/json; charset=utf-8', headers, head);
}

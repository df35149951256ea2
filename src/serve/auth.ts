// Optional API key: `Authorization: Bearer <key>` (what the openai clients send). Compared in constant time:
// both sides are hashed to SHA-256 first (equal lengths whatever the input) and compared with timingSafeEqual, so
// neither the key's bytes nor its length leak through timing.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.js';

const sha = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** A checker for one key; throws a 401 HttpError when the request does not carry it. */
export function bearerAuth(apiKey: string): (req: IncomingMessage) => void {
  if (apiKey === '') throw new HttpError(500, 'api_key: must not be empty');
  const want = sha(apiKey);
  return (req) => {
    const h = req.headers.authorization;
    const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
    const ok = m !== null && timingSafeEqual(sha(m[1]!), want);
    if (!ok) {
      throw new HttpError(
        401,
        m ? 'invalid API key' : 'missing API key: send "Authorization: Bearer <key>"',
        undefined,
        { 'WWW-Authenticate': 'Bearer' },
        'invalid_api_key',
      );
    }
  };
}

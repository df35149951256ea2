// Admission control: at most `max` requests that generate are accepted at once (queued or running); one more is a
// 429. A slot is taken when the request is accepted and given back exactly once, when its response closes (answered,
// failed, or the client went away), so a client that disconnects never leaks its slot.
import type { ServerResponse } from 'node:http';
import { HttpError } from './http-error.js';

export class Slots {
  private used = 0;
  constructor(readonly max: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Take a slot for this response (429 when none is free); released when `res` closes. */
  take(res: ServerResponse): void {
    if (this.used >= this.max) {
      throw new HttpError(
        429,
        `too many requests in flight (${this.max}, the server's max_concurrent); retry later`,
        undefined,
        { 'Retry-After': '1' },
        'rate_limit_exceeded',
      );
    }
    this.used++;
    let released = false;
    res.once('close', () => {
      if (released) return;
      released = true;
      this.used--;
    });
  }
}

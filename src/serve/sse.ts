// Server-sent events as the OpenAI streaming API sends them: `data: <json>\n\n` per chunk, then `data: [DONE]\n\n`
// (https://html.spec.whatwg.org/multipage/server-sent-events.html; OpenAI API reference, "stream").
import type { ServerResponse } from 'node:http';

export class SseWriter {
  private started = false;
  constructor(private readonly res: ServerResponse) {}

  /** whether the client is gone (then writes are dropped) */
  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    this.res.flushHeaders();
  }

  data(value: unknown): void {
    if (this.closed) return;
    this.start();
    this.res.write(`data: ${JSON.stringify(value)}\n\n`);
  }

  done(): void {
    if (this.closed) return;
    this.start();
    this.res.end('data: [DONE]\n\n');
  }
}

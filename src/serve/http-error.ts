// An error answered as JSON with an HTTP status: {"error": {"status", "message", "field"?}}.
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly field?: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
  }
}

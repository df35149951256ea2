// An error answered as JSON with an HTTP status. The body is OpenAI-shaped ({"error": {"message", "type", "param",
// "code"}}, what the `openai` clients parse) plus medlora's own "status" and "field" (what /v1/extract always sent).
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
    readonly code?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** OpenAI's error "type" for a status (their API reference: invalid_request_error, authentication_error, ...). */
export function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** The JSON body of an error answer. */
export function errorBody(e: HttpError): { error: Record<string, unknown> } {
  return {
    error: {
      message: e.message,
      type: errorType(e.status),
      param: e.field ?? null,
      code: e.code ?? null,
      status: e.status,
      ...(e.field ? { field: e.field } : {}),
    },
  };
}

// User-facing errors: a MedloraError is printed as one clear line by the CLI (no stack) and exits non-zero.
// Everything else is a bug and is printed with its stack.
//
// A library error names the setting it is about as the library spells it (the snake_case key of configs, contracts
// and the HTTP API, e.g. max_new_tokens) and carries that name in `field`; only the CLI turns it into a flag
// (src/cli/flag-words.ts), and serve answers it as the JSON error's "field". The CLI replaces every whole word of the
// message equal to `field` or one of `related`, so a message uses those words only where they mean the setting.

export class MedloraError extends Error {
  /** exit code the CLI uses for this error */
  readonly exitCode: number;
  /**
   * the option / key the error is about, snake_case (e.g. "max_new_tokens"); the message spells it so, or in camelCase
   * where the API it checks does (createServer's maxBatch)
   */
  readonly field?: string;
  /** further settings the message names (e.g. one it suggests instead), spelled as in the message */
  readonly related: readonly string[];
  constructor(
    message: string,
    options?: { cause?: unknown; exitCode?: number; field?: string; related?: readonly string[] },
  ) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'MedloraError';
    this.exitCode = options?.exitCode ?? 1;
    if (options?.field !== undefined) this.field = options.field;
    this.related = options?.related ?? [];
  }
}

/** Throw a MedloraError unless `cond` holds. */
export function check(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new MedloraError(typeof message === 'function' ? message() : message);
}

/** A MedloraError about one setting: `field` names it in the message and in `error.field`. */
export function fieldError(field: string, message: string, related: readonly string[] = []): MedloraError {
  return new MedloraError(message, { field, related });
}

/** `e` with `prefix` before its message (e.g. the file and line), keeping its field, related names and exit code. */
export function prefixed(prefix: string, e: MedloraError): MedloraError {
  return new MedloraError(`${prefix}${e.message}`, {
    cause: e,
    exitCode: e.exitCode,
    ...(e.field !== undefined ? { field: e.field } : {}),
    related: e.related,
  });
}

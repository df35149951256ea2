// User-facing errors: a MedloraError is printed as one clear line by the CLI (no stack) and exits non-zero.
// Everything else is a bug and is printed with its stack.

export class MedloraError extends Error {
  /** exit code the CLI uses for this error */
  readonly exitCode: number;
  constructor(message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'MedloraError';
    this.exitCode = options?.exitCode ?? 1;
  }
}

/** Throw a MedloraError unless `cond` holds. */
export function check(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new MedloraError(typeof message === 'function' ? message() : message);
}

// Visible warnings from library code: one line on stderr ("medlora: warning: ..."), each distinct message once per
// process, so stdout stays clean for --json. A program embedding medlora can take them over with setWarningHandler.

let handler: ((message: string) => void) | undefined;
const seen = new Set<string>();

/** Route warnings elsewhere (e.g. a test collecting them); undefined restores stderr. Returns the previous handler. */
export function setWarningHandler(h: ((message: string) => void) | undefined): ((message: string) => void) | undefined {
  const prev = handler;
  handler = h;
  return prev;
}

/** Emit a warning: to the handler if one is set (every time), else to stderr once per distinct message. */
export function warn(message: string): void {
  if (handler) {
    handler(message);
    return;
  }
  if (seen.has(message)) return;
  seen.add(message);
  process.stderr.write(`medlora: warning: ${message}\n`);
}

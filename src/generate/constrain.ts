// Wires the evaluation engineer's constrained decoding (src/generate/constraints: ConstrainedSession per sequence)
// into generate()'s per-sequence constraint hook: before each choice the session is told the tokens chosen since
// the last call, then asked for the allowed-token mask.
import type { ConstrainedSession } from './constraints/index.js';
import type { ConstraintFn } from './generate.js';

/** One session per sequence (index = prompt index). */
export function sessionsConstraint(sessions: ConstrainedSession[]): ConstraintFn {
  const seen = sessions.map(() => 0);
  return (seq, generated) => {
    const s = sessions[seq];
    if (!s) throw new Error(`constraint: no session for sequence ${seq} (${sessions.length} sessions)`);
    for (let i = seen[seq]!; i < generated.length; i++) s.accept(generated[i]!);
    seen[seq] = generated.length;
    const m = s.mask();
    return { allowed: m.allowed, eosAllowed: m.eos };
  };
}

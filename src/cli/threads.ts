// The one `--threads N` option of every command that computes, and where it is applied: src/cli/main.ts calls
// applyThreads before a command whose spec declares it runs (so commands need no code of their own for it).
import type { OptionSpec, ParsedArgs } from './command.js';
import { MedloraError } from '../util/errors.js';

export const THREADS_OPTION: OptionSpec = {
  type: 'number',
  value: 'N',
  description:
    'CPU threads for the engine (default: MEDLORA_NUM_THREADS, else the physical cores; idle OpenMP workers sleep, see docs/PERFORMANCE.md)',
};

/** Validate --threads and set the engine's intra-op thread count; returns the value, or undefined when not given. */
export async function applyThreads(args: ParsedArgs): Promise<number | undefined> {
  const v = args.options.threads;
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new MedloraError(`--threads must be a positive integer, got ${String(v)}`);
  const { setNumThreads } = await import('../tensor/index.js');
  setNumThreads(v);
  return v;
}

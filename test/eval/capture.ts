// Test helper: run the CLI's main() and capture what it prints.
import { main } from '../../src/cli/main.js';

export async function runCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log,
    error = console.error;
  console.log = (...a: unknown[]) => {
    out.push(a.map(String).join(' '));
  };
  console.error = (...a: unknown[]) => {
    err.push(a.map(String).join(' '));
  };
  try {
    const code = await main(argv);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

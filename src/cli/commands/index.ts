// The registry of every `medlora` command, discovered from this folder: each `<name>.ts` file here exports one
// CommandSpec (any exported object with a `name` and a `run`). Adding a command = adding a file; no shared list to edit.
// Command files must keep their top level light (import heavy modules such as the engine inside run()).
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { CommandSpec } from '../command.js';

function isCommand(v: unknown): v is CommandSpec {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as CommandSpec).name === 'string' &&
    typeof (v as CommandSpec).run === 'function'
  );
}

async function discover(): Promise<CommandSpec[]> {
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(here)
    .filter((f) => f.endsWith('.js') && f !== 'index.js' && !f.endsWith('.test.js'))
    .sort();
  const out: CommandSpec[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(`${here}/${f}`).href)) as Record<string, unknown>;
    for (const v of Object.values(mod)) if (isCommand(v) && !out.includes(v)) out.push(v);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export const commands: CommandSpec[] = await discover();

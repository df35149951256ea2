// medlora CLI dispatcher: finds the command (longest match of its words), parses flags from its spec, runs it, and
// turns MedloraError into one clear line and a non-zero exit code.
import { commands } from './commands/index.js';
import { helpText, parseArgs, type CommandSpec } from './command.js';
import { MedloraError } from '../util/errors.js';
import { applyThreads } from './threads.js';
import { flagWorded } from './flag-words.js';
import { loadTaskFile } from '../data/tasks/index.js';

function findCommand(argv: string[]): { spec: CommandSpec; rest: string[] } | undefined {
  let best: { spec: CommandSpec; rest: string[] } | undefined;
  for (const spec of commands) {
    const words = spec.name.split(' ');
    if (words.every((w, i) => argv[i] === w) && (!best || words.length > best.spec.name.split(' ').length)) {
      best = { spec, rest: argv.slice(words.length) };
    }
  }
  return best;
}

export function overview(): string {
  const w = Math.max(...commands.map((c) => c.name.length), 8) + 2;
  return [
    'medlora: LoRA fine-tuning and serving of LLMs for drug and medical information extraction',
    '',
    'Usage: medlora <command> [options]     (medlora <command> --help for its options)',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
  ].join('\n');
}

/**
 * The one place a user-facing error gets its "medlora <command>: error: " prefix. Messages that already start with a
 * "medlora <words>:" prefix (library code and commands name themselves in places) have it removed first, so no
 * command can print the prefix twice.
 */
export function errorLine(command: string, message: string): string {
  const bare = message.replace(/^(?:medlora(?: [a-z0-9-]+)*: (?:error: )?)+/, '');
  return `medlora ${command}: error: ${bare}`;
}

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug') || process.env.MEDLORA_DEBUG === '1';
  argv = argv.filter((a) => a !== '--debug');
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(overview());
    return argv.length === 0 ? 1 : 0;
  }
  if (argv[0] === '--version') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    console.log(pkg.version);
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    // a group word alone ("data") lists its subcommands
    const group = commands.filter((c) => c.name.startsWith(`${argv[0]} `));
    if (group.length) {
      console.error(
        `medlora ${argv[0]}: choose one of:\n${group.map((c) => `  medlora ${c.name}  ${c.summary}`).join('\n')}`,
      );
    } else {
      console.error(`medlora: unknown command "${argv[0]}"\n\n${overview()}`);
    }
    return 2;
  }
  const { spec, rest } = found;
  // --task-file FILE (any command, repeatable): define a task from a JSON Schema before the command runs
  for (let i = rest.indexOf('--task-file'); i >= 0; i = rest.indexOf('--task-file')) {
    const file = rest[i + 1];
    if (file === undefined || file.startsWith('--')) {
      console.error(`medlora ${spec.name}: error: --task-file needs a FILE`);
      return 2;
    }
    try {
      loadTaskFile(file);
    } catch (e) {
      console.error(`medlora ${spec.name}: error: --task-file: ${(e as Error).message}`);
      return 2;
    }
    rest.splice(i, 2);
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(helpText(spec));
    return 0;
  }
  try {
    const args = parseArgs(spec, rest);
    if (spec.options.threads) await applyThreads(args);
    const code = await spec.run(args);
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    if (e instanceof MedloraError && !debug) {
      console.error(errorLine(spec.name, flagWorded(spec, e)));
      return e.exitCode;
    }
    // errors thrown by the native engine are already descriptive; show them without a stack unless --debug
    if (e instanceof Error && !debug && (e as { engine?: boolean }).engine) {
      console.error(errorLine(spec.name, e.message));
      return 1;
    }
    console.error(
      e instanceof Error ? (debug ? e.stack : `${e.message}\n(run with --debug for the stack)`) : String(e),
    );
    return 1;
  }
}

// `medlora extract`: structured results (JSON lines) for one text or a JSONL file of texts, each entity with its
// source span; glue over src/infer/extract.ts.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { CommandSpec } from '../command.js';
import { bool, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { GENERATION_OPTIONS, generationSettings, loadModelAndTokenizer } from './eval.js';
import { DIST_OPTIONS, startRanks } from '../distributed.js';
import { deviceFromFlag } from '../device.js';

/** Read {"id"?, "text"} (or canonical records' "input") lines; ids default to the line number. */
async function readInputs(file: string): Promise<Array<{ id: string; text: string }>> {
  const { readLines } = await import('../../data/jsonl.js');
  const out: Array<{ id: string; text: string }> = [];
  const ids = new Set<string>();
  for await (const { line, text } of readLines(file)) {
    if (text.trim() === '') continue;
    const where = `${file}:${line}`;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new MedloraError(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (!v || typeof v !== 'object' || Array.isArray(v))
      throw new MedloraError(`${where}: expected a JSON object {"id", "text"}`);
    const o = v as Record<string, unknown>;
    const body = o.text ?? o.input;
    if (typeof body !== 'string') throw new MedloraError(`${where}: needs "text" (or "input") as a string`);
    const id =
      o.id === undefined
        ? String(line)
        : typeof o.id === 'string' || typeof o.id === 'number'
          ? String(o.id)
          : undefined;
    if (id === undefined) throw new MedloraError(`${where}: "id" must be a string or number`);
    if (ids.has(id)) throw new MedloraError(`${where}: duplicate id "${id}"`);
    ids.add(id);
    out.push({ id, text: body });
  }
  if (out.length === 0) throw new MedloraError(`${file}: no input lines (expected JSON lines {"id", "text"})`);
  return out;
}

export const extractCommand: CommandSpec = {
  name: 'extract',
  summary: 'Extract structured drug / medical information from text with a model (+ adapter), as JSON lines',
  positionals: '[TEXT]',
  details: [
    'Input: one TEXT argument, or --input FILE.jsonl with {"id", "text"} per line ("input" is accepted for "text";',
    'the id defaults to the line number). Output: one JSON line per text on stdout (or --output FILE):',
    '  {"id", "task", "output" (raw text), "result" (the task\'s structured answer), "entities", "unparsed", "finish_reason"}',
    'entities: [{"role", "text", "span": [start, end] | null, "occurrences": [[start, end], ...]}]. Offsets are Unicode',
    'code points of the input (Python text[start:end]), end exclusive; matching is case-insensitive after normalising',
    'whitespace and dashes; span is the first occurrence, null when the entity does not occur in the text.',
    "The prompt style, max length, instruction and dtype come from the adapter's training contract (medlora_contract.json,",
    'written by medlora train); a flag that contradicts it wins with a warning. A plain PEFT adapter: alpaca, no limit.',
    "finish_reason: eos (the answer ended), length (--max-new-tokens reached) or max_positions (the model's",
    'max_position_embeddings reached); truncated is true for the last two.',
  ].join('\n'),
  options: {
    ...GENERATION_OPTIONS,
    task: {
      type: 'string',
      value: 'TASK',
      description:
        "ddi-triplets, chemicals, diseases, influences, chemprot, drug-ae or ade-email (default: the adapter's training contract when it names one task)",
    },
    input: { type: 'string', value: 'FILE', description: 'JSONL of {"id", "text"} (instead of TEXT)' },
    output: { type: 'string', value: 'FILE', description: 'write the JSON lines here instead of stdout' },
    quiet: { type: 'boolean', description: 'no progress bar' },
    ...DIST_OPTIONS,
  },
  async run(args) {
    // checked before anything starts or loads (each rank of several takes its local rank's CUDA device)
    const device = await deviceFromFlag(args, { ranks: true });
    // several ranks (--nproc-per-node or torchrun): each extracts its share of --input, rank 0 writes them all in order
    const ranks = await startRanks('extract', args);
    if ('exitCode' in ranks) return ranks.exitCode;
    const parallel = ranks.parallel;
    const { structuredTask } = await import('../../infer/generate-answers.js');
    const { extract } = await import('../../infer/extract.js');
    const { Progress } = await import('../../util/progress.js');
    const { readContract } = await import('../../data/contract.js');
    const adapter = str(args, 'adapter');
    const contract = adapter !== undefined ? readContract(adapter) : null;
    const structured =
      contract?.tasks
        .map((t) => t.name)
        .filter((t) => {
          try {
            structuredTask(t);
            return true;
          } catch {
            return false;
          }
        }) ?? [];
    const taskFlag = str(args, 'task');
    if (taskFlag === undefined && structured.length !== 1) {
      throw new MedloraError(
        `--task TASK is required${contract ? ` (the adapter's training contract names ${structured.length ? structured.join(', ') : 'no structured task'})` : ''}`,
      );
    }
    const task = structuredTask(taskFlag ?? structured[0]!);
    const file = str(args, 'input');
    if (file !== undefined && args.positionals.length)
      throw new MedloraError('medlora extract: give TEXT or --input FILE, not both');
    if (file === undefined && args.positionals.length !== 1) {
      throw new MedloraError(
        `medlora extract: give one TEXT argument (quote it) or --input FILE.jsonl${args.positionals.length > 1 ? ` (got ${args.positionals.length} arguments)` : ''}`,
      );
    }
    const inputs = file !== undefined ? await readInputs(file) : [{ id: '1', text: args.positionals[0]! }];
    const gen = generationSettings(args, 'extract');
    const {
      model,
      tok,
      settings: resolved,
    } = await loadModelAndTokenizer(args, 'extract', device, true, taskFlag !== undefined ? { tasks: [task] } : {});
    const settings = {
      ...gen,
      promptStyle: resolved.prompt_style,
      maxLength: resolved.max_length,
      instructions: resolved.instructions,
    };
    let results;
    try {
      const bar =
        file !== undefined
          ? new Progress({
              total: inputs.length,
              label: 'extract',
              unit: 'texts',
              quiet: bool(args, 'quiet') || (parallel?.rank ?? 0) !== 0,
            })
          : undefined;
      results = extract(model, tok, task, inputs, {
        ...settings,
        parallel,
        onProgress: (_p, done) => bar?.update(done),
      }).results;
      bar?.end();
    } finally {
      model.dispose();
    }
    parallel?.destroy();
    if ((parallel?.rank ?? 0) !== 0) return 0;
    const cut = results.filter((r) => r.finish_reason === 'max_positions').length;
    if (cut)
      console.error(
        `warning: ${cut} answer(s) TRUNCATED at the model's max_position_embeddings (finish_reason max_positions, truncated true); shorten the inputs (--max-length)`,
      );
    const outFile = str(args, 'output');
    const lines = results.map((r) => JSON.stringify(r)).join('\n');
    if (outFile === undefined) console.log(lines);
    else {
      const ws: WriteStream = createWriteStream(outFile);
      await new Promise<void>((res, rej) => {
        ws.on('error', (e) => rej(new MedloraError(`--output ${outFile}: ${e.message}`)));
        ws.end(`${lines}\n`, () => res());
      });
    }
    return 0;
  },
};

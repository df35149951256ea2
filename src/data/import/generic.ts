// Generic JSONL importer: {instruction, input, output}, {prompt, completion} or {messages: [...]} lines. The task is
// --task, else detected (the medical NER recipe's three prompts -> chemicals / diseases / influences), else qa.
// For list tasks the output text is read back into gold with the line formats of tasks.ts ("- x", "a | b", "<a, r, b>").
import { MedloraError } from '../../util/errors.js';
import type { Gold, MedRecord, TaskName } from '../schema.js';
import { readJsonl, newReport } from '../jsonl.js';
import { getTask, NER_INSTRUCTIONS } from '../tasks.js';
import { countRecord, type Importer } from './common.js';

interface Generic {
  instruction?: string;
  input: string;
  output: string;
}

/** Normalise the three accepted shapes; returns an error message for anything else. */
export function toGeneric(v: unknown): Generic | string {
  const o = v as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) return 'expected a JSON object';
  if ('messages' in o) {
    if (!Array.isArray(o.messages)) return 'field "messages" must be an array';
    const ms = o.messages as Array<Record<string, unknown>>;
    for (let i = 0; i < ms.length; i++) {
      if (typeof ms[i]?.role !== 'string' || typeof ms[i]?.content !== 'string')
        return `messages[${i}] needs string "role" and "content"`;
    }
    const sys = ms.filter((m) => m.role === 'system').map((m) => m.content as string);
    const user = ms.filter((m) => m.role === 'user');
    const asst = ms.filter((m) => m.role === 'assistant');
    if (user.length !== 1 || asst.length !== 1)
      return `messages must hold exactly one "user" and one "assistant" turn (got ${user.length} and ${asst.length})`;
    return {
      ...(sys.length ? { instruction: sys.join('\n') } : {}),
      input: user[0]!.content as string,
      output: asst[0]!.content as string,
    };
  }
  if ('prompt' in o || 'completion' in o) {
    if (typeof o.prompt !== 'string') return 'field "prompt" is missing or not a string';
    if (typeof o.completion !== 'string') return 'field "completion" is missing or not a string';
    return { input: o.prompt, output: o.completion };
  }
  if ('output' in o || 'input' in o || 'instruction' in o) {
    if (typeof o.output !== 'string') return 'field "output" is missing or not a string';
    if (o.input !== undefined && typeof o.input !== 'string') return 'field "input" must be a string';
    if (o.instruction !== undefined && typeof o.instruction !== 'string') return 'field "instruction" must be a string';
    return {
      ...(o.instruction ? { instruction: o.instruction as string } : {}),
      input: (o.input as string | undefined) ?? '',
      output: o.output,
    };
  }
  return 'expected fields instruction/input/output, prompt/completion, or messages';
}

/** Detect a medical NER recipe prompt: instruction + "\n\n" + article + "\n\nList of extracted X:\n". */
export function detectNer(
  prompt: string,
): { task: 'chemicals' | 'diseases' | 'influences'; input: string } | undefined {
  for (const task of ['chemicals', 'diseases', 'influences'] as const) {
    const head = `${NER_INSTRUCTIONS[task]}\n\n`;
    const tail = new RegExp(`\\n\\nList of extracted ${task}:\\s*$`);
    if (prompt.startsWith(head) && tail.test(prompt))
      return { task, input: prompt.slice(head.length).replace(tail, '') };
  }
  return undefined;
}

/** Read a target text back into gold with the task's own parser (its rendered format); an error message if any of
 * it cannot be read. */
export function goldFromText(task: string, text: string): Gold | string {
  const t = getTask(task);
  if (!t.structured) return text;
  const p = t.parse(text);
  if (p.unparsed.length) return `cannot read ${JSON.stringify(p.unparsed[0]!.slice(0, 120))} as task ${task}'s format`;
  return p.items as Gold;
}

/** A field of a JSON object by name or dotted path ("a.b"). */
function fieldAt(o: unknown, path: string): unknown {
  let v = o;
  for (const k of path.split('.'))
    v = v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

export const genericJsonl: Importer = {
  format: 'jsonl',
  description:
    'generic JSONL: instruction/input/output, prompt/completion, or chat messages (--task, else detected, else qa)',
  async *read(path, counts, opts) {
    const forced = opts.task !== undefined ? getTask(opts.task).name : undefined;
    const report = newReport(path);
    let n = 0;
    const mapped = opts.inputField !== undefined || opts.goldField !== undefined;
    if (mapped && (opts.inputField === undefined || opts.goldField === undefined || forced === undefined)) {
      throw new MedloraError('a field mapping needs the input field, the gold field and the task');
    }
    // with a field mapping: input = o[inputField] (text), gold = o[goldField] (the structured answer, or its JSON text)
    const mapRecord = (v: unknown): (Generic & { gold?: unknown }) | string => {
      const input = fieldAt(v, opts.inputField!);
      if (typeof input !== 'string') return `field "${opts.inputField}" is missing or not a string`;
      let gold = fieldAt(v, opts.goldField!);
      if (gold === undefined) return `field "${opts.goldField}" is missing`;
      if (typeof gold === 'string' && getTask(forced!).structured) {
        const parsed = goldFromText(forced!, gold);
        if (typeof parsed === 'string') return `field "${opts.goldField}": ${parsed}`;
        gold = parsed;
      }
      return { input, output: '', gold };
    };
    const check = (v: unknown): string | undefined => {
      const g = mapped ? mapRecord(v) : toGeneric(v);
      return typeof g === 'string' ? g : undefined;
    };
    for await (const v of readJsonl<unknown>(path, check, report, { skipInvalid: opts.skipInvalid })) {
      const g = (mapped ? mapRecord(v) : toGeneric(v)) as Generic & { gold?: unknown };
      n++;
      const ner =
        !mapped && (forced === undefined || forced === 'chemicals' || forced === 'diseases' || forced === 'influences')
          ? detectNer(g.input)
          : undefined;
      const task: TaskName = (forced ?? ner?.task ?? 'qa') as TaskName;
      const input = ner && ner.task === task ? ner.input : g.input;
      const gold = mapped ? (g.gold as Gold) : goldFromText(task, g.output);
      const err = typeof gold === 'string' && task !== 'qa' ? gold : getTask(task).validate(gold);
      if (err) {
        const msg = `${path}: record ${n}: as task ${task}: ${err}`;
        if (!opts.skipInvalid) throw new MedloraError(msg);
        opts.invalid?.push({ file: path, line: -1, error: msg });
        continue;
      }
      const instruction = ner && ner.task === task ? undefined : g.instruction;
      const r: MedRecord = {
        id: `${task}-${n}`,
        task,
        input,
        gold: gold as never,
        ...(instruction !== undefined ? { instruction } : {}),
        meta: { corpus: 'jsonl', source_record: n },
      };
      countRecord(counts, task, getTask(task).labels(gold as never));
      yield r;
    }
    for (const x of report.invalid) opts.invalid?.push({ file: path, line: x.line, error: x.error });
    counts.notes.invalid = report.invalid.length;
  },
};

// Generic JSONL importer: {instruction, input, output}, {prompt, completion} or {messages: [...]} lines. The task is
// --task, else detected (the medical NER recipe's three prompts -> chemicals / diseases / influences), else qa.
// For list tasks the output text is read back into gold with the line formats of tasks.ts ("- x", "a | b", "<a, r, b>").
import { MedloraError } from '../../util/errors.js';
import type { Gold, MedRecord, Pair, TaskName, Triplet } from '../schema.js';
import { readJsonl, newReport } from '../jsonl.js';
import { EMPTY_ANSWER, getTask, NER_INSTRUCTIONS } from '../tasks.js';
import { countRecord, type Importer } from './common.js';

interface Generic { instruction?: string; input: string; output: string }

/** Normalise the three accepted shapes; returns an error message for anything else. */
export function toGeneric(v: unknown): Generic | string {
  const o = v as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) return 'expected a JSON object';
  if ('messages' in o) {
    if (!Array.isArray(o.messages)) return 'field "messages" must be an array';
    const ms = o.messages as Array<Record<string, unknown>>;
    for (let i = 0; i < ms.length; i++) {
      if (typeof ms[i]?.role !== 'string' || typeof ms[i]?.content !== 'string') return `messages[${i}] needs string "role" and "content"`;
    }
    const sys = ms.filter((m) => m.role === 'system').map((m) => m.content as string);
    const user = ms.filter((m) => m.role === 'user');
    const asst = ms.filter((m) => m.role === 'assistant');
    if (user.length !== 1 || asst.length !== 1) return `messages must hold exactly one "user" and one "assistant" turn (got ${user.length} and ${asst.length})`;
    return { ...(sys.length ? { instruction: sys.join('\n') } : {}), input: user[0]!.content as string, output: asst[0]!.content as string };
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
    return { ...(o.instruction ? { instruction: o.instruction as string } : {}), input: (o.input as string | undefined) ?? '', output: o.output };
  }
  return 'expected fields instruction/input/output, prompt/completion, or messages';
}

/** Detect a medical NER recipe prompt: instruction + "\n\n" + article + "\n\nList of extracted X:\n". */
export function detectNer(prompt: string): { task: 'chemicals' | 'diseases' | 'influences'; input: string } | undefined {
  for (const task of ['chemicals', 'diseases', 'influences'] as const) {
    const head = `${NER_INSTRUCTIONS[task]}\n\n`;
    const tail = new RegExp(`\\n\\nList of extracted ${task}:\\s*$`);
    if (prompt.startsWith(head) && tail.test(prompt)) return { task, input: prompt.slice(head.length).replace(tail, '') };
  }
  return undefined;
}

/** Read a target text back into gold for a task (line formats of tasks.ts). */
export function goldFromText(task: TaskName, text: string): Gold | string {
  const ls = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const list = ls.length === 1 && ls[0]!.toLowerCase() === EMPTY_ANSWER ? [] : ls;
  const unbullet = (l: string): string => l.replace(/^[-*•]\s*/, '');
  switch (task) {
    case 'qa': return text;
    case 'chemicals': case 'diseases': return list.map(unbullet);
    case 'influences': case 'drug-ae': {
      const out: Pair[] = [];
      for (const l of list) {
        const p = unbullet(l).split(' | ');
        if (p.length !== 2 || !p[0] || !p[1]) return `line "${l}" is not "head | tail"`;
        out.push({ head: p[0].trim(), tail: p[1].trim() });
      }
      return out;
    }
    case 'ddi-triplets': case 'chemprot': {
      const out: Triplet[] = [];
      for (const l of list) {
        // head = up to the first ", ", tail = after the last ", " (relations may contain commas, names rarely do)
        const m = /^<(.+?), (.+), ([^,]+)>$/.exec(l);
        if (!m) return `line "${l}" is not "<head, relation, tail>"`;
        out.push({ head: m[1]!.trim(), relation: m[2]!.trim(), tail: m[3]!.trim() });
      }
      return out;
    }
    case 'ade-email': {
      try { return JSON.parse(text) as Gold; } catch { return 'output is not JSON {drug_name, adverse_events}'; }
    }
  }
}

export const genericJsonl: Importer = {
  format: 'jsonl',
  description: 'generic JSONL: instruction/input/output, prompt/completion, or chat messages (--task, else detected, else qa)',
  async *read(path, counts, opts) {
    const forced = opts.task !== undefined ? getTask(opts.task).name : undefined;
    const report = newReport(path);
    let n = 0;
    const check = (v: unknown): string | undefined => {
      const g = toGeneric(v);
      return typeof g === 'string' ? g : undefined;
    };
    for await (const v of readJsonl<unknown>(path, check, report, { skipInvalid: opts.skipInvalid })) {
      const g = toGeneric(v) as Generic;
      n++;
      const ner = forced === undefined || forced === 'chemicals' || forced === 'diseases' || forced === 'influences' ? detectNer(g.input) : undefined;
      const task: TaskName = forced ?? ner?.task ?? 'qa';
      const input = ner && ner.task === task ? ner.input : g.input;
      const gold = goldFromText(task, g.output);
      const err = typeof gold === 'string' && task !== 'qa' ? gold : getTask(task).validate(gold);
      if (err) {
        const msg = `${path}: record ${n}: as task ${task}: ${err}`;
        if (!opts.skipInvalid) throw new MedloraError(msg);
        opts.invalid?.push({ file: path, line: -1, error: msg });
        continue;
      }
      const instruction = ner && ner.task === task ? undefined : g.instruction;
      const r: MedRecord = { id: `${task}-${n}`, task, input, gold: gold as never,
        ...(instruction !== undefined ? { instruction } : {}), meta: { corpus: 'jsonl', source_record: n } };
      countRecord(counts, task, getTask(task).labels(gold as never));
      yield r;
    }
    for (const x of report.invalid) opts.invalid?.push({ file: path, line: x.line, error: x.error });
    counts.notes.invalid = report.invalid.length;
  },
};

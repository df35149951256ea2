// Parsers from raw model text back to each task's structured answer (the shapes of src/data/schema.ts).
// Tolerant of harmless variation (spacing, bullets, numbering, trailing punctuation, code fences, CRLF) and honest
// about the rest: every line that could not be read is returned in `unparsed` instead of being silently dropped.
import type { AdeEmail, GoldByTask, Pair, TaskName, Triplet } from '../data/schema.js';
import { MedloraError } from '../util/errors.js';

export interface ParseResult<T> {
  items: T;
  /** input lines (or the whole text, for JSON) that the parser could not read */
  unparsed: string[];
}

/** Tasks whose output has a structured format (everything but free-text qa). */
export type StructuredTask = Exclude<TaskName, 'qa'>;
export const STRUCTURED_TASKS: readonly StructuredTask[] = [
  'ddi-triplets', 'chemicals', 'diseases', 'influences', 'chemprot', 'drug-ae', 'ade-email',
];

/** The word list tasks render for an empty answer (agreed with src/data/tasks.ts). */
export const EMPTY_ANSWER = 'none';

/** Normalise line endings, drop a BOM and markdown code-fence lines (```json ... ```). */
export function cleanOutput(text: string): string {
  return text
    .replace(/^\uFEFF/, '')
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .filter((l) => !/^\s*```[\w-]*\s*$/.test(l))
    .join('\n')
    .trim();
}

/** Content lines: trimmed, non-empty. */
function lines(text: string): string[] {
  return cleanOutput(text).split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
}

/** Strip a list marker: "- ", "* ", "• ", "1. ", "2) ". */
export function stripBullet(line: string): string {
  return line.replace(/^(?:[-*•‣·]|\d{1,3}[.)])\s+/, '').trim();
}

/** Drop trailing sentence punctuation that is never part of a name (". ; ,"). */
function stripTrailingPunct(s: string): string {
  return s.replace(/[\s.;,]+$/, '');
}

/** Remove one pair of matching surrounding quotes. */
function unquote(s: string): string {
  const m = /^(["'`“‘])(.*)(["'`”’])$/.exec(s);
  return m ? m[2]!.trim() : s;
}

function isEmptyAnswer(line: string): boolean {
  return /^(?:none|no\s+\w+(?:\s+\w+)?\s+found|n\/a)\.?$/i.test(stripBullet(line));
}

/** `<head, relation, tail>` lines: split on the FIRST and LAST comma inside the brackets (names may hold commas). */
export function parseTriplets(text: string): ParseResult<Triplet[]> {
  const items: Triplet[] = [];
  const unparsed: string[] = [];
  for (const raw of lines(text)) {
    if (isEmptyAnswer(raw)) continue;
    const line = stripTrailingPunct(stripBullet(raw));
    // one or more bracketed groups, optionally separated by commas/semicolons/spaces; "(a, r, b)" is accepted too
    const groups = [...line.matchAll(/<([^<>]*)>|\(([^()]*)\)/g)];
    const rest = line.replace(/<[^<>]*>|\([^()]*\)/g, '').replace(/[\s,;]/g, '');
    if (groups.length === 0 || rest.length > 0) { unparsed.push(raw); continue; }
    for (const g of groups) {
      const t = splitTriplet(g[1] ?? g[2] ?? '');
      if (t) items.push(t);
      else unparsed.push(groups.length === 1 ? raw : g[0]);
    }
  }
  return { items, unparsed };
}

/**
 * Split on the first and last ", " (comma + space) when there are two, so names like "2,4-dinitrophenol" survive;
 * otherwise on the first and last bare comma (the agreed rule; "<a,b,c>").
 */
function splitTriplet(inner: string): Triplet | undefined {
  for (const sep of [', ', ',']) {
    const first = inner.indexOf(sep);
    const last = inner.lastIndexOf(sep);
    if (first < 0 || last === first) continue;
    const head = unquote(inner.slice(0, first).trim());
    const relation = unquote(inner.slice(first + sep.length, last).trim());
    const tail = unquote(inner.slice(last + sep.length).trim());
    if (head && relation && tail) return { head, relation, tail };
  }
  return undefined;
}

/** `- name` bullet lines (a line without a bullet is accepted as a name; a "Header:" line is not). */
export function parseBullets(text: string): ParseResult<string[]> {
  const items: string[] = [];
  const unparsed: string[] = [];
  for (const raw of lines(text)) {
    if (isEmptyAnswer(raw)) continue;
    const unbulleted = stripBullet(raw);
    // a header line ("List of extracted chemicals:") has no bullet and ends with a colon
    if (unbulleted === raw && /:$/.test(raw)) { unparsed.push(raw); continue; }
    const name = unquote(stripTrailingPunct(unbulleted));
    if (!name || /^[-*•]+$/.test(name)) { unparsed.push(raw); continue; }
    items.push(name);
  }
  return { items, unparsed };
}

/** `head | tail` lines (optionally bulleted, as in the medical NER recipe's "- chemical | disease"). */
export function parsePairs(text: string): ParseResult<Pair[]> {
  const items: Pair[] = [];
  const unparsed: string[] = [];
  for (const raw of lines(text)) {
    if (isEmptyAnswer(raw)) continue;
    // split first, then clean each side: a bullet belongs to the head, trailing punctuation to the tail
    const parts = raw.split('|');
    const head = parts.length === 2 ? unquote(stripBullet(parts[0]!.trim())) : '';
    const tail = parts.length === 2 ? unquote(stripTrailingPunct(parts[1]!.trim())) : '';
    if (!head || !tail) { unparsed.push(raw); continue; }
    items.push({ head, tail });
  }
  return { items, unparsed };
}

/** `{"drug_name": "...", "adverse_events": [...]}`: the first {...} object in the text (prose around it is ignored). */
export function parseAdeEmail(text: string): ParseResult<AdeEmail> {
  const empty: AdeEmail = { drug_name: '', adverse_events: [] };
  const t = cleanOutput(text);
  if (t === '') return { items: empty, unparsed: [] };
  const start = t.indexOf('{');
  const end = t.lastIndexOf('}');
  if (start < 0 || end < start) return { items: empty, unparsed: [t] };
  let obj: unknown;
  try {
    obj = JSON.parse(t.slice(start, end + 1));
  } catch {
    return { items: empty, unparsed: [t] };
  }
  return adeFromObject(obj, t);
}

function adeFromObject(obj: unknown, raw: string): ParseResult<AdeEmail> {
  const unparsed: string[] = [];
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    return { items: { drug_name: '', adverse_events: [] }, unparsed: [raw] };
  }
  const o = obj as Record<string, unknown>;
  let drug = '';
  if (typeof o.drug_name === 'string') drug = o.drug_name.trim();
  else if (o.drug_name !== undefined && o.drug_name !== null) unparsed.push(`drug_name: ${JSON.stringify(o.drug_name)}`);
  const events: string[] = [];
  const ae = o.adverse_events;
  if (Array.isArray(ae)) {
    for (const e of ae) {
      if (typeof e === 'string' && e.trim()) events.push(e.trim());
      else unparsed.push(`adverse_events item: ${JSON.stringify(e)}`);
    }
  } else if (typeof ae === 'string' && ae.trim()) {
    events.push(ae.trim()); // a lone string instead of a one-element list: harmless
  } else if (ae !== undefined && ae !== null) {
    unparsed.push(`adverse_events: ${JSON.stringify(ae)}`);
  }
  if (o.drug_name === undefined && ae === undefined) unparsed.push(raw);
  return { items: { drug_name: drug, adverse_events: events }, unparsed };
}

/** Parse raw model text for a task. */
export function parseOutput<T extends StructuredTask>(task: T, text: string): ParseResult<GoldByTask[T]> {
  const r = parseAny(task, text);
  return r as ParseResult<GoldByTask[T]>;
}

function parseAny(task: StructuredTask, text: string): ParseResult<GoldByTask[StructuredTask]> {
  switch (task) {
    case 'ddi-triplets':
    case 'chemprot':
      return parseTriplets(text);
    case 'chemicals':
    case 'diseases':
      return parseBullets(text);
    case 'influences':
    case 'drug-ae':
      return parsePairs(text);
    case 'ade-email':
      return parseAdeEmail(text);
  }
}

/**
 * Validate an already structured prediction ({"pred": ...} in a predictions file) against the task's gold shape.
 * `where` names the file and line for the error.
 */
export function validateStructured<T extends StructuredTask>(task: T, value: unknown, where: string): ParseResult<GoldByTask[T]> {
  const bad = (what: string): never => {
    throw new MedloraError(`${where}: "pred" for task ${task} must be ${what}; got ${JSON.stringify(value)?.slice(0, 120)}`);
  };
  const isStr = (x: unknown): x is string => typeof x === 'string';
  switch (task) {
    case 'chemicals':
    case 'diseases':
      if (!Array.isArray(value) || !value.every(isStr)) bad('an array of strings');
      return { items: value as GoldByTask[T], unparsed: [] };
    case 'influences':
    case 'drug-ae':
      if (!Array.isArray(value) || !value.every((p) => p && isStr(p.head) && isStr(p.tail))) {
        bad('an array of {"head": string, "tail": string}');
      }
      return { items: (value as Pair[]).map((p) => ({ head: p.head, tail: p.tail })) as GoldByTask[T], unparsed: [] };
    case 'ddi-triplets':
    case 'chemprot':
      if (!Array.isArray(value) || !value.every((p) => p && isStr(p.head) && isStr(p.relation) && isStr(p.tail))) {
        bad('an array of {"head": string, "relation": string, "tail": string}');
      }
      return {
        items: (value as Triplet[]).map((p) => ({ head: p.head, relation: p.relation, tail: p.tail })) as GoldByTask[T],
        unparsed: [],
      };
    case 'ade-email': {
      const o = value as AdeEmail | null;
      if (!o || typeof o !== 'object' || !isStr(o.drug_name) || !Array.isArray(o.adverse_events) || !o.adverse_events.every(isStr)) {
        bad('{"drug_name": string, "adverse_events": string[]}');
      }
      return { items: { drug_name: o!.drug_name, adverse_events: [...o!.adverse_events] } as GoldByTask[T], unparsed: [] };
    }
  }
  return bad('a structured answer');
}

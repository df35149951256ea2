// Shared pieces of the line-list task formats (ddi-triplets, chemprot, chemicals, diseases, influences, drug-ae):
// renderers, tolerant parsers, gold shape checks and the list grammars. Each task module (one per task) picks its
// own from these. RENDERED FORMATS (exactly one item per line, no trailing newline):
//   triplets  `<head, relation, tail>`    bullets  `- name`    pairs  `head | tail`
// An EMPTY answer renders as the single line `none`, so the model always emits something parseable and "nothing
// found" is learned explicitly. Items keep gold order; exact duplicates are rendered once; no line breaks inside.
import { MedloraError } from '../../util/errors.js';
import type { Pair, Triplet } from '../schema.js';
import {
  DEFAULT_BOUNDS,
  type FormatBounds,
  type ListFormat,
  type ParseResult,
  type Segment,
  type Task,
} from './types.js';
import type { JsonSchema } from './json-schema.js';

/** The line that stands for "no items" in every list task. */
export const EMPTY_ANSWER = 'none';

// ---- rendering
function checkItem(task: string, s: string): string {
  if (/[\r\n]/.test(s))
    throw new MedloraError(`task ${task}: an answer item may not contain a line break: ${JSON.stringify(s)}`);
  return s.trim();
}
export { checkItem };

function joinLines(items: string[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const it of items)
    if (!seen.has(it)) {
      seen.add(it);
      out.push(it);
    }
  return out.length === 0 ? EMPTY_ANSWER : out.join('\n');
}
export const renderTriplets =
  (task: string) =>
  (g: Triplet[]): string =>
    joinLines(g.map((t) => `<${checkItem(task, t.head)}, ${checkItem(task, t.relation)}, ${checkItem(task, t.tail)}>`));
export const renderPairs =
  (task: string) =>
  (g: Pair[]): string =>
    joinLines(g.map((p) => `${checkItem(task, p.head)} | ${checkItem(task, p.tail)}`));
export const renderBullets =
  (task: string) =>
  (g: string[]): string =>
    joinLines(g.map((s) => `- ${checkItem(task, s)}`));

// ---- gold shape checks
const isStr = (v: unknown): v is string => typeof v === 'string';
export function validateArray(
  gold: unknown,
  item: (v: unknown) => string | undefined,
  what: string,
): string | undefined {
  if (!Array.isArray(gold)) return `gold must be an array of ${what}`;
  for (let i = 0; i < gold.length; i++) {
    const e = item(gold[i]);
    if (e) return `gold[${i}]: ${e}`;
  }
  return undefined;
}
export const tripletItem = (v: unknown): string | undefined => {
  const o = v as Record<string, unknown> | null;
  if (!o || typeof o !== 'object') return 'expected {head, relation, tail}';
  for (const k of ['head', 'relation', 'tail'])
    if (!isStr(o[k]) || (o[k] as string).trim() === '') return `field "${k}" must be a non-empty string`;
  return undefined;
};
export const pairItem = (v: unknown): string | undefined => {
  const o = v as Record<string, unknown> | null;
  if (!o || typeof o !== 'object') return 'expected {head, tail}';
  for (const k of ['head', 'tail'])
    if (!isStr(o[k]) || (o[k] as string).trim() === '') return `field "${k}" must be a non-empty string`;
  return undefined;
};
export const strItem = (v: unknown): string | undefined =>
  isStr(v) && v.trim() !== '' ? undefined : 'expected a non-empty string';

// ---- tolerant parsing: harmless variation (spacing, bullets, numbering, trailing punctuation, code fences, CRLF) is
// accepted; every line that could not be read is returned in `unparsed`

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
function contentLines(text: string): string[] {
  return cleanOutput(text)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
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
export function unquote(s: string): string {
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
  for (const raw of contentLines(text)) {
    if (isEmptyAnswer(raw)) continue;
    const line = stripTrailingPunct(stripBullet(raw));
    // one or more bracketed groups, optionally separated by commas/semicolons/spaces; "(a, r, b)" is accepted too
    const groups = [...line.matchAll(/<([^<>]*)>|\(([^()]*)\)/g)];
    const rest = line.replace(/<[^<>]*>|\([^()]*\)/g, '').replace(/[\s,;]/g, '');
    if (groups.length === 0 || rest.length > 0) {
      unparsed.push(raw);
      continue;
    }
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
  for (const raw of contentLines(text)) {
    if (isEmptyAnswer(raw)) continue;
    const unbulleted = stripBullet(raw);
    // a header line ("List of extracted chemicals:") has no bullet and ends with a colon
    if (unbulleted === raw && /:$/.test(raw)) {
      unparsed.push(raw);
      continue;
    }
    const name = unquote(stripTrailingPunct(unbulleted));
    if (!name || /^[-*•]+$/.test(name)) {
      unparsed.push(raw);
      continue;
    }
    items.push(name);
  }
  return { items, unparsed };
}

/** `head | tail` lines (optionally bulleted, as in the medical NER recipe's "- chemical | disease"). */
export function parsePairs(text: string): ParseResult<Pair[]> {
  const items: Pair[] = [];
  const unparsed: string[] = [];
  for (const raw of contentLines(text)) {
    if (isEmptyAnswer(raw)) continue;
    // split first, then clean each side: a bullet belongs to the head, trailing punctuation to the tail
    const parts = raw.split('|');
    const head = parts.length === 2 ? unquote(stripBullet(parts[0]!.trim())) : '';
    const tail = parts.length === 2 ? unquote(stripTrailingPunct(parts[1]!.trim())) : '';
    if (!head || !tail) {
      unparsed.push(raw);
      continue;
    }
    items.push({ head, tail });
  }
  return { items, unparsed };
}

// ---- list grammars (src/generate/constraints/format.ts compiles them). Delimiters are excluded from the fields
// that precede them.
const bounds = (b: Partial<FormatBounds>): FormatBounds => ({ ...DEFAULT_BOUNDS, ...b });
const field = (b: FormatBounds, exclude: string, commas = false): Segment => ({
  kind: 'field',
  exclude,
  maxBytes: b.maxFieldBytes,
  commas,
});
const lit = (text: string): Segment => ({ kind: 'lit', text });
const lineList = (b: FormatBounds, item: Segment[]): ListFormat => ({
  prefix: [],
  item,
  separator: '\n',
  suffix: '',
  emptyAnswer: EMPTY_ANSWER,
  minItems: 1,
  maxItems: b.maxItems,
});

/** `<head, relation, tail>` lines: names may hold commas but not ", " (the parser splits on the first and last ", ");
 * the relation is free text without commas, or one of `relations` */
export function tripletFormat(bo: Partial<FormatBounds>, relations?: string[]): ListFormat {
  const b = bounds(bo);
  const rel: Segment = relations ? { kind: 'enum', options: relations } : field(b, ',<>');
  return lineList(b, [lit('<'), field(b, '<>', true), lit(', '), rel, lit(', '), field(b, '<>', true), lit('>')]);
}
/** `- name` lines */
export function bulletFormat(bo: Partial<FormatBounds>): ListFormat {
  const b = bounds(bo);
  return lineList(b, [lit('- '), field(b, '')]);
}
/** `head | tail` lines: the head ends at "|" (a space before it is part of the field and trimmed by the parser) */
export function pairFormat(bo: Partial<FormatBounds>): ListFormat {
  const b = bounds(bo);
  return lineList(b, [field(b, '|'), lit('| '), field(b, '|')]);
}

// ---- result schemas (the answer's JSON shape, published by serve)
const str: JsonSchema = { type: 'string' };
export const tripletSchema = (head: string, rel: string, tail: string): JsonSchema => ({
  type: 'array',
  items: {
    type: 'object',
    required: ['head', 'relation', 'tail'],
    additionalProperties: false,
    properties: {
      head: { ...str, description: head },
      relation: { ...str, description: rel },
      tail: { ...str, description: tail },
    },
  },
});
export const pairSchema = (head: string, tail: string): JsonSchema => ({
  type: 'array',
  items: {
    type: 'object',
    required: ['head', 'tail'],
    additionalProperties: false,
    properties: { head: { ...str, description: head }, tail: { ...str, description: tail } },
  },
});
export const listSchema = (what: string): JsonSchema => ({ type: 'array', items: { ...str, description: what } });

/** Entities of a pair/triplet answer: head and tail with their roles, duplicates once. */
export function pairEntities(
  value: Array<{ head: string; tail: string }>,
  h: string,
  t: string,
): Array<{ role: string; text: string }> {
  const out: Array<{ role: string; text: string }> = [];
  const add = (role: string, text: string): void => {
    if (text && !out.some((e) => e.role === role && e.text === text)) out.push({ role, text });
  };
  for (const p of value) {
    add(h, p.head);
    add(t, p.tail);
  }
  return out;
}
export function listEntities(value: string[], role: string): Array<{ role: string; text: string }> {
  const out: Array<{ role: string; text: string }> = [];
  for (const s of value) if (s && !out.some((e) => e.text === s)) out.push({ role, text: s });
  return out;
}

/** The medical NER recipe's instructions, verbatim from ../shared/corpora/medical-ner-instruct (prompt's first paragraph). */
const NER_PREFIX = 'The following article contains technical terms including diseases, drugs and chemicals. ';
export const NER_INSTRUCTIONS = {
  chemicals: `${NER_PREFIX}Create a list only of the chemicals mentioned.`,
  diseases: `${NER_PREFIX}Create a list only of the diseases mentioned.`,
  influences: `${NER_PREFIX}Create a list only of the influences between the chemicals and diseases mentioned.`,
} as const;

/**
 * A medical NER recipe task: a bullet list (`- name` lines) of the mentions of one entity kind (chemicals, diseases),
 * each scored as a unit typed by that kind.
 */
export function mentionListTask(name: 'chemicals' | 'diseases', kind: string): Task<string[]> {
  return {
    name,
    instruction: NER_INSTRUCTIONS[name],
    structured: true,
    render: renderBullets(name),
    parse: parseBullets,
    grammar: (b) => ({ kind: 'list', format: bulletFormat(b ?? {}) }),
    resultSchema: listSchema(`${kind} mention`),
    validate: (g) => validateArray(g, strItem, 'strings'),
    empty: () => [],
    labels: (g) => g.map(() => kind),
    isEmpty: (g) => g.length === 0,
    units: (v) => v.map((s) => ({ type: kind, names: [s], text: s })),
    symmetricRelations: [],
    entities: (v) => listEntities(v, kind),
    entityRoles: [kind],
    spec: () => ({ kind: 'builtin', name }),
  };
}

/**
 * What every `<head, relation, tail>` task (ddi-triplets, chemprot) shares: the rendering, tolerant parsing, gold
 * check and the scoring units typed by relation. Each task module adds its instruction, grammar, schema and roles.
 */
export function tripletTaskBase(
  name: 'ddi-triplets' | 'chemprot',
): Pick<
  Task<Triplet[]>,
  'name' | 'structured' | 'render' | 'parse' | 'validate' | 'empty' | 'labels' | 'isEmpty' | 'units' | 'spec'
> {
  return {
    name,
    structured: true,
    render: renderTriplets(name),
    parse: parseTriplets,
    validate: (g) => validateArray(g, tripletItem, '{head, relation, tail}'),
    empty: () => [],
    labels: (g) => g.map((t) => t.relation),
    isEmpty: (g) => g.length === 0,
    units: (v) =>
      v.map((t) => ({
        type: t.relation,
        relation: t.relation,
        names: [t.head, t.tail],
        text: `<${t.head}, ${t.relation}, ${t.tail}>`,
      })),
    spec: () => ({ kind: 'builtin', name }),
  };
}

// What one task module owns about its answer format (the task registry, src/data/tasks/registry.ts, holds them):
// instruction, render(gold) -> target text, tolerant parse(text) -> answer, the byte-level answer grammar that
// constrained decoding compiles (src/generate/constraints), the JSON Schema of the answer, match units for scoring,
// labels for stats and stratified splits. Nothing outside the registry switches on a task name.
import type { JsonSchema } from './json-schema.js';

export type { JsonSchema } from './json-schema.js';

/** Raw model text read back: the answer, and every piece the parser could not read (never silently dropped). */
export interface ParseResult<T> {
  items: T;
  unparsed: string[];
}

// ---- line-list grammars (the seven built-in formats' shape: PREFIX ITEM (SEP ITEM)* SUFFIX | EMPTY)
export type Segment =
  | { kind: 'lit'; text: string }
  /** free text: printable ASCII (except `exclude`) and UTF-8 multi-byte characters, 1..maxBytes bytes; it may not
   * start with a space and may only end after an ASCII letter/digit or a 2-byte letter (U+00C0-U+07FF) has been seen,
   * so the parser's trimming of whitespace, bullets, quotes and trailing punctuation can never empty it. With
   * `commas`, a comma not followed by a space is part of the text ("2,4-dinitrophenol"); ", " then ends the field
   * when the format continues with ", " and is not allowed otherwise (triplet parsers split on the first/last ", ") */
  | { kind: 'field'; exclude: string; maxBytes: number; commas?: boolean }
  /** one of a fixed set of strings (e.g. ChemProt CPR groups) */
  | { kind: 'enum'; options: string[] };

export interface ListFormat {
  prefix: Segment[];
  item: Segment[];
  /** between items; must be non-empty */
  separator: string;
  /** after the last item; may be empty */
  suffix: string;
  /** an alternative complete answer (e.g. "none" for an empty list) */
  emptyAnswer?: string;
  /** 0: PREFIX SUFFIX alone is an answer (JSON "[]"); 1: an empty answer must use `emptyAnswer` */
  minItems: 0 | 1;
  maxItems: number;
}

/** Bounds a list grammar is built with (they cap what a constrained model can write). */
export interface FormatBounds {
  /** most list items (lines) */
  maxItems: number;
  /** most bytes in one free-text field (entity name, relation text) */
  maxFieldBytes: number;
  /** ChemProt relation labels the constraint allows */
  chemprotGroups: string[];
}

/** ChemProt CPR groups 1-10 (BioCreative VI ChemProt guidelines); the shared task evaluates 3, 4, 5, 6 and 9. */
export const CHEMPROT_GROUPS = [
  'CPR:1',
  'CPR:2',
  'CPR:3',
  'CPR:4',
  'CPR:5',
  'CPR:6',
  'CPR:7',
  'CPR:8',
  'CPR:9',
  'CPR:10',
];

// generous enough for every well-formed gold answer of the shared corpora (the token budget, not these, is what ends a
// runaway generation)
export const DEFAULT_BOUNDS: FormatBounds = { maxItems: 63, maxFieldBytes: 160, chemprotGroups: CHEMPROT_GROUPS };

/**
 * The byte-level answer grammar a task hands to constrained decoding: a line list (FormatAutomaton), or canonical
 * compact JSON valid against a schema (keys in schema order, no whitespace; src/generate/constraints/json.ts).
 * `nonBlankStrings`: every JSON string must hold a character that String.prototype.trim keeps.
 */
export type Grammar =
  { kind: 'list'; format: ListFormat } | { kind: 'json'; schema: JsonSchema; nonBlankStrings?: boolean };

/**
 * One comparable unit of an answer for scoring (src/eval/match.ts turns it into a typed key). `names` are the
 * entity strings (normalised in relaxed mode, filtered in predictions); with `relation`, the unit's type is the
 * (normalised) relation and the key holds it; `literal` is an exact key part (numbers, booleans of schema tasks).
 */
export interface MatchUnit {
  type: string;
  names: string[];
  relation?: string;
  literal?: string;
  /** human-readable form for error reports */
  text: string;
}

/** A JSON description of a task that can travel (training contract, API): enough to rebuild it with taskFromSpec. */
export type TaskSpecJson =
  { kind: 'builtin'; name: string } | { kind: 'schema'; name: string; instruction: string; schema: JsonSchema };

export interface Task<G = unknown> {
  name: string;
  /** the fixed instruction placed before the input (a record's own `instruction` overrides it) */
  instruction: string;
  /** free-text tasks (qa) have no structured answer: no grammar, parser or scoring */
  structured: boolean;
  /** gold -> target text (a pure function; throws MedloraError on gold it cannot render) */
  render(gold: G): string;
  /** raw model text -> answer; tolerant of harmless variation, honest about the rest (`unparsed`) */
  parse(text: string): ParseResult<G>;
  /** the answer grammar of constrained decoding (undefined for free text) */
  grammar(bounds?: Partial<FormatBounds>): Grammar | undefined;
  /** JSON Schema of the structured answer (what `GET /v1/tasks` publishes and `pred` values must satisfy) */
  resultSchema: JsonSchema;
  /** check a JSON value has this task's gold shape; an error message (naming the path) or undefined */
  validate(gold: unknown): string | undefined;
  /** the empty answer (a prompt's placeholder gold, a missing prediction) */
  empty(): G;
  /** labels for stats / stratification (relation types, entity types, JSON paths) */
  labels(gold: G): string[];
  /** whether the gold holds nothing (rendered as the task's empty answer); counted by `data stats` */
  isEmpty(gold: G): boolean;
  /** comparable units of an answer, for P/R/F1 */
  units(value: G): MatchUnit[];
  /** relations scored as unordered pairs by default */
  symmetricRelations: readonly string[];
  /** entity roles of an answer (extract / serve spans): role + text, duplicates listed once */
  entities(value: G): Array<{ role: string; text: string }>;
  /** the roles `entities` can return (published by serve) */
  entityRoles: string[];
  /** JSON that rebuilds this task (taskFromSpec) */
  spec(): TaskSpecJson;
}

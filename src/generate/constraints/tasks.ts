// The answer format of each structured task as a byte automaton (the rendered formats agreed with src/data/tasks.ts
// and read back by src/eval/parse.ts). Bounds are options: they cap what a constrained model can write.
import type { StructuredTask } from '../../eval/parse.js';
import { FormatAutomaton, type ListFormat } from './format.js';

export interface FormatBounds {
  /** most list items (lines, or adverse events) */
  maxItems: number;
  /** most bytes in one free-text field (entity name, relation text, JSON string) */
  maxFieldBytes: number;
  /** ChemProt relation labels the constraint allows */
  chemprotGroups: string[];
}

/** ChemProt CPR groups 1-10 (BioCreative VI ChemProt guidelines); the shared task evaluates 3, 4, 5, 6 and 9. */
export const CHEMPROT_GROUPS = ['CPR:1', 'CPR:2', 'CPR:3', 'CPR:4', 'CPR:5', 'CPR:6', 'CPR:7', 'CPR:8', 'CPR:9', 'CPR:10'];

// generous enough for every well-formed gold answer of the shared corpora (the token budget, not these, is what ends a
// runaway generation)
export const DEFAULT_BOUNDS: FormatBounds = { maxItems: 63, maxFieldBytes: 160, chemprotGroups: CHEMPROT_GROUPS };

/** The list format of a task. Delimiters are excluded from the fields that precede them. */
export function taskFormat(task: StructuredTask, bounds: Partial<FormatBounds> = {}): ListFormat {
  const b = { ...DEFAULT_BOUNDS, ...bounds };
  const field = (exclude: string, commas = false) => ({ kind: 'field' as const, exclude, maxBytes: b.maxFieldBytes, commas });
  const lit = (text: string) => ({ kind: 'lit' as const, text });
  const lines = { prefix: [], separator: '\n', suffix: '', emptyAnswer: 'none', minItems: 1 as const, maxItems: b.maxItems };
  switch (task) {
    case 'ddi-triplets':
      // <head, relation, tail>: names may hold commas but not ", " (the parser splits on the first and last ", ");
      // relation text holds no commas at all (agreed with the DDI renderer)
      return { ...lines, item: [lit('<'), field('<>', true), lit(', '), field(',<>'), lit(', '), field('<>', true), lit('>')] };
    case 'chemprot':
      return { ...lines, item: [lit('<'), field('<>', true), lit(', '), { kind: 'enum', options: b.chemprotGroups }, lit(', '), field('<>', true), lit('>')] };
    case 'chemicals':
    case 'diseases':
      return { ...lines, item: [lit('- '), field('')] };
    case 'influences':
    case 'drug-ae':
      // "head | tail": the head ends at "|" (a space before it is part of the field and trimmed by the parser)
      return { ...lines, item: [field('|'), lit('| '), field('|')] };
    case 'ade-email':
      // exactly {"drug_name": "...", "adverse_events": ["...", ...]}; strings never hold quotes, backslashes or
      // control characters, so no escapes are needed
      return {
        prefix: [lit('{"drug_name": "'), field('"\\'), lit('", "adverse_events": [')],
        item: [lit('"'), field('"\\'), lit('"')],
        separator: ', ',
        suffix: ']}',
        minItems: 0,
        maxItems: b.maxItems,
      };
  }
}

export function taskAutomaton(task: StructuredTask, bounds: Partial<FormatBounds> = {}): FormatAutomaton {
  return new FormatAutomaton(taskFormat(task, bounds));
}

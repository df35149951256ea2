// Demo step 5a: extraction on a few sentences a user can read: held-out test sentences (drug pairs the model never
// saw together) run through `medlora extract`'s library call (src/infer/extract.ts), each shown with the fine-tuned
// model's triplets and whether they match the gold answer.
import type { MedRecord, Triplet } from '../data/schema.js';
import { extract, type ExtractOptions } from '../infer/extract.js';
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';

export interface ExtractionExample {
  id: string;
  sentence: string;
  output: string;
  triplets: Triplet[];
  gold: Triplet[];
  correct: boolean;
}

const key = (t: Triplet): string => `${t.head}\u0000${t.relation}\u0000${t.tail}`;

/** Pick `n` examples: a two-interaction record first when there is one (it shows a list answer), then single ones. */
export function pickExamples(test: MedRecord<'ddi-triplets'>[], n: number): MedRecord<'ddi-triplets'>[] {
  const two = test.filter((r) => r.gold.length > 1).slice(0, 1);
  const one = test.filter((r) => r.gold.length === 1 && r.input.length < 120);
  return [...two, ...one].slice(0, n);
}

/** Whether a set of triplets equals the gold set exactly (strict text match, as the score's default). */
export function sameTriplets(got: Triplet[], gold: Triplet[]): boolean {
  const want = new Set(gold.map(key));
  return new Set(got.map(key)).size === want.size && got.length === want.size && got.every((t) => want.has(key(t)));
}

/** Extract triplets from the records' sentences (gold is only used to say whether the answer is right). */
export function extractExamples(
  model: CausalLM,
  tok: TextTokenizer,
  records: MedRecord<'ddi-triplets'>[],
  o: ExtractOptions,
): ExtractionExample[] {
  const { results } = extract(
    model,
    tok,
    'ddi-triplets',
    records.map((r) => ({ id: r.id, text: r.input })),
    o,
  );
  return records.map((r, i) => {
    const triplets = results[i]!.result as Triplet[];
    return {
      id: r.id,
      sentence: r.input,
      output: results[i]!.output,
      triplets,
      gold: r.gold,
      correct: sameTriplets(triplets, r.gold),
    };
  });
}

/** Terminal lines for the examples. */
export function renderExamples(xs: ExtractionExample[]): string {
  return xs
    .map((x) =>
      [
        `  "${x.sentence}"`,
        ...(x.triplets.length
          ? x.triplets.map((t) => `    -> <${t.head}, ${t.relation}, ${t.tail}>`)
          : ['    -> (nothing extracted)']),
        `    ${x.correct ? '(matches the gold answer)' : `(gold: ${x.gold.map((t) => `<${t.head}, ${t.relation}, ${t.tail}>`).join(' ')})`}`,
      ].join('\n'),
    )
    .join('\n');
}

// Demo step 5a: extraction on a few sentences a user can read: held-out test sentences (drug pairs the model never
// saw together), each shown with the fine-tuned model's triplets and whether they match the gold answer.
import type { MedRecord, Triplet } from '../data/schema.js';
import { parseOutput } from '../eval/parse.js';
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import { predict, type PredictOptions } from './evaluate.js';

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

export function extractExamples(model: CausalLM, tok: TextTokenizer, records: MedRecord<'ddi-triplets'>[], o: PredictOptions): ExtractionExample[] {
  const preds = predict(model, tok, records, o);
  return records.map((r, i) => {
    const triplets = parseOutput('ddi-triplets', preds[i]!.output).items;
    const want = new Set(r.gold.map(key));
    const correct = triplets.length === want.size && triplets.every((t) => want.has(key(t)));
    return { id: r.id, sentence: r.input, output: preds[i]!.output, triplets, gold: r.gold, correct };
  });
}

/** Terminal lines for the examples. */
export function renderExamples(xs: ExtractionExample[]): string {
  return xs.map((x) => [
    `  "${x.sentence}"`,
    ...(x.triplets.length ? x.triplets.map((t) => `    -> <${t.head}, ${t.relation}, ${t.tail}>`) : ['    -> (nothing extracted)']),
    `    ${x.correct ? 'matches the gold answer' : `gold: ${x.gold.map((t) => `<${t.head}, ${t.relation}, ${t.tail}>`).join(' ')}`}`,
  ].join('\n')).join('\n');
}

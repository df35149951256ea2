// Test helper: the adverse-event emails' training file turned into canonical records (a minimal conversion for the
// scoring tests; the data engineer's importer is the real one).
import { readFileSync } from 'node:fs';
import type { AdeEmail, MedRecord } from '../../src/data/schema.js';
import { sharedPath } from '../../src/util/paths.js';

export const ADE_TRAIN = sharedPath(
  'corpora',
  'ade-email-entity-extraction',
  'entity_extraction',
  'entity-extraction-train-data.json',
);

export interface AdeRaw {
  input: string;
  output: string;
}

export function adeEmailRecords(): Array<MedRecord<'ade-email'> & { raw: string }> {
  const rows = JSON.parse(readFileSync(ADE_TRAIN, 'utf8')) as AdeRaw[];
  return rows.map((r, i) => ({
    id: `ade-email-train-${i}`,
    task: 'ade-email' as const,
    input: r.input,
    gold: JSON.parse(r.output) as AdeEmail,
    raw: r.output,
  }));
}

// Adverse-event email importer: a JSON array of {"input": email, "output": {drug_name, adverse_events}} where output
// is a JSON string (entity_extraction/*.json) or an object (entity_extraction_reports/*.txt); a file or a folder.
import { readFileSync, statSync, existsSync } from 'node:fs';
import { relative } from 'node:path';
import { MedloraError } from '../../util/errors.js';
import type { AdeEmail, MedRecord } from '../schema.js';
import { bump, countRecord, decodeUtf8, walkFiles, type Importer } from './common.js';

function toAde(v: unknown, where: string): AdeEmail {
  let o = v;
  if (typeof o === 'string') {
    try {
      o = JSON.parse(o);
    } catch (e) {
      throw new MedloraError(`${where}: "output" is a string but not valid JSON (${(e as Error).message})`);
    }
  }
  const r = o as Record<string, unknown> | null;
  if (!r || typeof r !== 'object' || Array.isArray(r))
    throw new MedloraError(`${where}: "output" must be an object {drug_name, adverse_events}`);
  if (typeof r.drug_name !== 'string') throw new MedloraError(`${where}: output.drug_name is missing or not a string`);
  if (!Array.isArray(r.adverse_events) || !r.adverse_events.every((x) => typeof x === 'string')) {
    throw new MedloraError(`${where}: output.adverse_events must be an array of strings`);
  }
  return { drug_name: r.drug_name, adverse_events: r.adverse_events as string[] };
}

export const adeEmail: Importer = {
  format: 'ade-email',
  description: 'adverse-event emails: JSON array of {input, output} (a file, or a folder of .json/.txt arrays)',
  async *read(path, counts) {
    if (!existsSync(path)) throw new MedloraError(`${path}: no such file or directory`);
    const folder = statSync(path).isDirectory();
    const files = folder ? [...walkFiles(path, '.json'), ...walkFiles(path, '.txt')].sort() : [path];
    if (files.length === 0) throw new MedloraError(`${path}: no .json or .txt files`);
    const drugs = new Set<string>();
    const skipped: string[] = [];
    for (const file of files) {
      const text = decodeUtf8(readFileSync(file), file);
      // In a folder, a file that is not a JSON array (the recipe's prompt-template.txt, a README) holds no records:
      // it is skipped and counted. A named file, and any element of a record array, must be right.
      const notRecords = (why: string): void => {
        if (!folder) throw new MedloraError(`${file}: ${why}`);
        skipped.push(file);
      };
      if (text.trim() === '') {
        notRecords('is empty (expected a JSON array)');
        continue;
      }
      let arr: unknown;
      try {
        arr = JSON.parse(text);
      } catch (e) {
        notRecords(`invalid JSON (${(e as Error).message})`);
        continue;
      }
      if (!Array.isArray(arr)) {
        notRecords('expected a JSON array of {input, output}');
        continue;
      }
      for (let i = 0; i < arr.length; i++) {
        const where = `${file}: element ${i}`;
        const o = arr[i] as Record<string, unknown>;
        if (!o || typeof o !== 'object' || typeof o.input !== 'string')
          throw new MedloraError(`${where}: "input" is missing or not a string`);
        if (!('output' in o)) throw new MedloraError(`${where}: "output" is missing`);
        const gold = toAde(o.output, where);
        drugs.add(gold.drug_name);
        bump(counts.notes, 'adverse_events', gold.adverse_events.length);
        const r: MedRecord<'ade-email'> = {
          id: `ade-email-${counts.records + 1}`,
          task: 'ade-email',
          input: o.input,
          gold,
          meta: { corpus: 'ade-email', source: file, drug: gold.drug_name },
        };
        countRecord(
          counts,
          'ade-email',
          gold.adverse_events.map(() => 'adverse_event'),
        );
        yield r;
      }
    }
    counts.notes.drugs = drugs.size;
    if (skipped.length) {
      counts.notes.skipped_files = skipped.length;
      counts.warnings.push(
        `skipped ${skipped.length} file(s) that are not JSON arrays of records: ${skipped.map((f) => relative(path, f)).join(', ')}`,
      );
    }
    if (counts.records === 0 && skipped.length)
      throw new MedloraError(
        `${path}: none of its ${files.length} .json/.txt files is a JSON array of {input, output} records`,
      );
  },
};

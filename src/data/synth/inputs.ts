// Inputs of `medlora data synth`: the prompt template with the adverse-event recipe's slots (`[DRUG NAME]`,
// `[DRUG SIDE EFFECTS]`, as in ../shared/corpora/ade-email-entity-extraction/prompt-template.txt) and the drug
// information (a JSONL file of {"drug", "info"} objects, or a folder of text files named after their drug).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { MedloraError } from '../../util/errors.js';

export const DRUG_NAME_SLOT = '[DRUG NAME]';
export const DRUG_INFO_SLOT = '[DRUG SIDE EFFECTS]';

export interface SynthTemplate {
  text: string;
  /** sha256 of the template's bytes (provenance) */
  sha256: string;
  file: string;
}

export interface DrugInfo {
  drug: string;
  info: string;
  /** where it came from: file[:line] */
  source: string;
}

export const sha256 = (s: string | Buffer): string => createHash('sha256').update(s).digest('hex');

export function readTemplate(file: string): SynthTemplate {
  if (!existsSync(file)) throw new MedloraError(`${file}: no such template file`);
  const buf = readFileSync(file);
  const text = buf.toString('utf8');
  for (const slot of [DRUG_NAME_SLOT, DRUG_INFO_SLOT]) {
    if (!text.includes(slot))
      throw new MedloraError(
        `${file}: the template has no ${slot} slot (it needs ${DRUG_NAME_SLOT} and ${DRUG_INFO_SLOT})`,
      );
  }
  return { text, sha256: sha256(buf), file };
}

/** The template with both slots filled (every occurrence). */
export function fillTemplate(t: SynthTemplate, d: DrugInfo): string {
  return t.text.split(DRUG_NAME_SLOT).join(d.drug).split(DRUG_INFO_SLOT).join(d.info.trim());
}

/** Drug information from a JSONL file ({"drug" | "name", "info" | "side_effects" | "text"}) or a folder of .txt / .md files. */
export function readDrugs(path: string): DrugInfo[] {
  if (!existsSync(path)) throw new MedloraError(`${path}: no such drug-information file or folder`);
  const out: DrugInfo[] = [];
  if (statSync(path).isDirectory()) {
    for (const f of readdirSync(path)
      .filter((x) => ['.txt', '.md'].includes(extname(x)))
      .sort()) {
      const info = readFileSync(join(path, f), 'utf8');
      if (info.trim() === '') throw new MedloraError(`${join(path, f)}: is empty (expected the drug's information)`);
      out.push({ drug: basename(f, extname(f)).replace(/[_-]+/g, ' ').trim(), info, source: join(path, f) });
    }
    if (out.length === 0) throw new MedloraError(`${path}: no .txt or .md files (one per drug, named after it)`);
    return out;
  }
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const where = `${path}:${i + 1}`;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch (e) {
        throw new MedloraError(`${where}: invalid JSON (${(e as Error).message})`);
      }
      const drug = o.drug ?? o.name;
      const info = o.info ?? o.side_effects ?? o.text;
      if (typeof drug !== 'string' || drug.trim() === '')
        throw new MedloraError(`${where}: "drug" (or "name") is missing or not a non-empty string`);
      if (typeof info !== 'string' || info.trim() === '')
        throw new MedloraError(`${where}: "info" (or "side_effects", "text") is missing or not a non-empty string`);
      out.push({ drug: drug.trim(), info, source: where });
    });
  if (out.length === 0) throw new MedloraError(`${path}: no drugs (expected JSONL lines {"drug", "info"})`);
  return out;
}

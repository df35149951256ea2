// Loads the project tokenizer for data commands. src/tokenize/tokenizer.ts (loadTokenizer) is written on another
// branch; it is imported at run time so this branch compiles before the merge (the lead may make it static).
import { MedloraError } from '../util/errors.js';
import type { TextTokenizer } from '../tokenize/types.js';

export async function loadDataTokenizer(dir: string): Promise<TextTokenizer> {
  const specifier = '../tokenize/tokenizer.js';
  let mod: { loadTokenizer?: (d: string) => TextTokenizer };
  try {
    mod = (await import(specifier)) as typeof mod;
  } catch (e) {
    throw new MedloraError(`the tokenizer module (src/tokenize/tokenizer.ts) is not available in this build: ${(e as Error).message}`);
  }
  if (typeof mod.loadTokenizer !== 'function') throw new MedloraError('src/tokenize/tokenizer.ts does not export loadTokenizer(dir)');
  return mod.loadTokenizer(dir);
}

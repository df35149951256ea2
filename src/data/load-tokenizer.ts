// Loads the project tokenizer for data commands (kept as one named entry point for the data CLI).
import { loadTokenizer } from '../tokenize/tokenizer.js';
import type { TextTokenizer } from '../tokenize/types.js';

export function loadDataTokenizer(dir: string): TextTokenizer {
  return loadTokenizer(dir);
}

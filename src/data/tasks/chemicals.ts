// Task chemicals: a bullet list (`- name` lines) of the chemicals mentioned (medical NER recipe, BC5CDR).
import type { Task } from './types.js';
import { mentionListTask } from './lines.js';

export const chemicals: Task<string[]> = mentionListTask('chemicals', 'chemical');

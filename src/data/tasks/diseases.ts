// Task diseases: a bullet list (`- name` lines) of the diseases mentioned (medical NER recipe, BC5CDR).
import type { Task } from './types.js';
import { mentionListTask } from './lines.js';

export const diseases: Task<string[]> = mentionListTask('diseases', 'disease');

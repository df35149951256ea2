// Task diseases: a bullet list (`- name` lines) of the diseases mentioned (medical NER recipe, BC5CDR).
import type { Task } from './types.js';
import {
  bulletFormat,
  listEntities,
  listSchema,
  NER_INSTRUCTIONS,
  parseBullets,
  renderBullets,
  strItem,
  validateArray,
} from './lines.js';

export const diseases: Task<string[]> = {
  name: 'diseases',
  instruction: NER_INSTRUCTIONS.diseases,
  structured: true,
  render: renderBullets('diseases'),
  parse: parseBullets,
  grammar: (b) => ({ kind: 'list', format: bulletFormat(b ?? {}) }),
  resultSchema: listSchema('disease mention'),
  validate: (g) => validateArray(g, strItem, 'strings'),
  empty: () => [],
  labels: (g) => g.map(() => 'disease'),
  isEmpty: (g) => g.length === 0,
  units: (v) => v.map((s) => ({ type: 'disease', names: [s], text: s })),
  symmetricRelations: [],
  entities: (v) => listEntities(v, 'disease'),
  entityRoles: ['disease'],
  spec: () => ({ kind: 'builtin', name: 'diseases' }),
};

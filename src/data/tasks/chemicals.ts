// Task chemicals: a bullet list (`- name` lines) of the chemicals mentioned (medical NER recipe, BC5CDR).
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

export const chemicals: Task<string[]> = {
  name: 'chemicals',
  instruction: NER_INSTRUCTIONS.chemicals,
  structured: true,
  render: renderBullets('chemicals'),
  parse: parseBullets,
  grammar: (b) => ({ kind: 'list', format: bulletFormat(b ?? {}) }),
  resultSchema: listSchema('chemical mention'),
  validate: (g) => validateArray(g, strItem, 'strings'),
  empty: () => [],
  labels: (g) => g.map(() => 'chemical'),
  isEmpty: (g) => g.length === 0,
  units: (v) => v.map((s) => ({ type: 'chemical', names: [s], text: s })),
  symmetricRelations: [],
  entities: (v) => listEntities(v, 'chemical'),
  entityRoles: ['chemical'],
  spec: () => ({ kind: 'builtin', name: 'chemicals' }),
};

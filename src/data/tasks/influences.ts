// Task influences: chemical-induced disease pairs as `chemical | disease` lines (BC5CDR CID, medical NER recipe).
import type { Pair } from '../schema.js';
import type { Task } from './types.js';
import {
  NER_INSTRUCTIONS,
  pairEntities,
  pairFormat,
  pairItem,
  pairSchema,
  parsePairs,
  renderPairs,
  validateArray,
} from './lines.js';

export const influences: Task<Pair[]> = {
  name: 'influences',
  instruction: NER_INSTRUCTIONS.influences,
  structured: true,
  render: renderPairs('influences'),
  parse: parsePairs,
  grammar: (b) => ({ kind: 'list', format: pairFormat(b ?? {}) }),
  resultSchema: pairSchema('chemical', 'disease it induces'),
  validate: (g) => validateArray(g, pairItem, '{head, tail}'),
  empty: () => [],
  labels: (g) => g.map(() => 'CID'),
  isEmpty: (g) => g.length === 0,
  units: (v) => v.map((p) => ({ type: 'chemical-disease', names: [p.head, p.tail], text: `${p.head} | ${p.tail}` })),
  symmetricRelations: [],
  entities: (v) => pairEntities(v, 'chemical', 'disease'),
  entityRoles: ['chemical', 'disease'],
  spec: () => ({ kind: 'builtin', name: 'influences' }),
};

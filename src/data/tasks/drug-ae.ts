// Task drug-ae: drug and adverse effect pairs as `drug | adverse effect` lines (ADE corpus v2).
import type { Pair } from '../schema.js';
import type { Task } from './types.js';
import { pairEntities, pairFormat, pairItem, pairSchema, parsePairs, renderPairs, validateArray } from './lines.js';

export const drugAe: Task<Pair[]> = {
  name: 'drug-ae',
  instruction:
    'Extract every drug and the adverse effect it caused from the input and output them one per line as "drug | adverse effect". Output "none" if the input reports no adverse drug effect.',
  structured: true,
  render: renderPairs('drug-ae'),
  parse: parsePairs,
  grammar: (b) => ({ kind: 'list', format: pairFormat(b ?? {}) }),
  resultSchema: pairSchema('drug', 'adverse effect'),
  validate: (g) => validateArray(g, pairItem, '{head, tail}'),
  empty: () => [],
  labels: (g) => g.map(() => 'ADE'),
  isEmpty: (g) => g.length === 0,
  units: (v) => v.map((p) => ({ type: 'drug-adverse_effect', names: [p.head, p.tail], text: `${p.head} | ${p.tail}` })),
  symmetricRelations: [],
  entities: (v) => pairEntities(v, 'drug', 'adverse_effect'),
  entityRoles: ['drug', 'adverse_effect'],
  spec: () => ({ kind: 'builtin', name: 'drug-ae' }),
};

// Task chemprot: chemical-protein relations as `<chemical, CPR group, gene/protein>` lines (ChemProt).
import type { Triplet } from '../schema.js';
import type { Task } from './types.js';
import {
  pairEntities,
  parseTriplets,
  renderTriplets,
  tripletFormat,
  tripletItem,
  tripletSchema,
  validateArray,
} from './lines.js';
import { CHEMPROT_GROUPS } from './types.js';

export const chemprot: Task<Triplet[]> = {
  name: 'chemprot',
  instruction:
    'Extract the chemical-protein relations from the input and output them one per line as triplets <chemical, CPR group, gene/protein>, where the CPR group is one of CPR:3 (upregulator/activator), CPR:4 (downregulator/inhibitor), CPR:5 (agonist), CPR:6 (antagonist), CPR:9 (substrate/product).',
  structured: true,
  render: renderTriplets('chemprot'),
  parse: parseTriplets,
  grammar: (b) => ({ kind: 'list', format: tripletFormat(b ?? {}, b?.chemprotGroups ?? CHEMPROT_GROUPS) }),
  resultSchema: tripletSchema('chemical', 'CPR group, e.g. CPR:4', 'gene / protein'),
  validate: (g) => validateArray(g, tripletItem, '{head, relation, tail}'),
  empty: () => [],
  labels: (g) => g.map((t) => t.relation),
  isEmpty: (g) => g.length === 0,
  units: (v) =>
    v.map((t) => ({
      type: t.relation,
      relation: t.relation,
      names: [t.head, t.tail],
      text: `<${t.head}, ${t.relation}, ${t.tail}>`,
    })),
  symmetricRelations: [], // chemical -> gene is directional
  entities: (v) => pairEntities(v, 'chemical', 'gene'),
  entityRoles: ['chemical', 'gene'],
  spec: () => ({ kind: 'builtin', name: 'chemprot' }),
};

// Task chemprot: chemical-protein relations as `<chemical, CPR group, gene/protein>` lines (ChemProt).
import type { Triplet } from '../schema.js';
import type { Task } from './types.js';
import { pairEntities, tripletFormat, tripletSchema, tripletTaskBase } from './lines.js';
import { CHEMPROT_GROUPS } from './types.js';

export const chemprot: Task<Triplet[]> = {
  ...tripletTaskBase('chemprot'),
  instruction:
    'Extract the chemical-protein relations from the input and output them one per line as triplets <chemical, CPR group, gene/protein>, where the CPR group is one of CPR:3 (upregulator/activator), CPR:4 (downregulator/inhibitor), CPR:5 (agonist), CPR:6 (antagonist), CPR:9 (substrate/product).',
  grammar: (b) => ({ kind: 'list', format: tripletFormat(b ?? {}, b?.chemprotGroups ?? CHEMPROT_GROUPS) }),
  resultSchema: tripletSchema('chemical', 'CPR group, e.g. CPR:4', 'gene / protein'),
  symmetricRelations: [], // chemical -> gene is directional
  entities: (v) => pairEntities(v, 'chemical', 'gene'),
  entityRoles: ['chemical', 'gene'],
};

// Task ddi-triplets: drug-drug interactions as `<drug1, relation, drug2>` lines (DrugBank sentences, DDI 2013).
import type { Triplet } from '../schema.js';
import type { Task } from './types.js';
import { pairEntities, tripletFormat, tripletSchema, tripletTaskBase } from './lines.js';

export const ddiTriplets: Task<Triplet[]> = {
  ...tripletTaskBase('ddi-triplets'),
  // the DrugBank recipe's fixed instruction (task brief, issue 5)
  instruction:
    'Extract drug entities and inter-entity relationships from input and output them in the form of triplets <drug entity1, relationship, drug entity2>.',
  // relation text holds no commas at all (agreed with the DDI renderer)
  grammar: (b) => ({ kind: 'list', format: tripletFormat(b ?? {}) }),
  resultSchema: tripletSchema('drug', 'interaction (free text)', 'drug'),
  // DDI 2013 scores a DDI as an unordered drug pair with a type (its pairs are annotated e1/e2 in text order, not by
  // direction; Segura-Bedmar et al. 2013, SemEval Task 9), so its four types are unordered. DrugBank template
  // relations ("X may increase the anticoagulant activities of Y") are directional.
  symmetricRelations: ['mechanism', 'effect', 'advise', 'int'],
  entities: (v) => pairEntities(v, 'drug', 'drug'),
  entityRoles: ['drug'],
};

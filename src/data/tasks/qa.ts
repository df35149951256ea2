// Task qa: a free-text answer about medications; no structured format (scored by loss / perplexity).
import type { Task } from './types.js';

export const qa: Task<string> = {
  name: 'qa',
  instruction: 'Answer the following question about medications accurately and concisely.',
  structured: false,
  render: (g) => g,
  parse: (text) => ({ items: text, unparsed: [] }),
  grammar: () => undefined,
  resultSchema: { type: 'string' },
  validate: (g) => (typeof g === 'string' ? undefined : 'gold must be a string (the answer)'),
  empty: () => '',
  labels: () => [],
  isEmpty: () => false,
  units: () => [],
  symmetricRelations: [],
  entities: () => [],
  entityRoles: [],
  spec: () => ({ kind: 'builtin', name: 'qa' }),
};

// The task layer's public surface (part of the data layer: data, generate, eval and serve all use it).
export * from './types.js';
export * from './registry.js';
export { schemaTask, type SchemaTaskDef } from './schema-task.js';
export {
  canonicalJson,
  compileSchema,
  leafPaths,
  leaves,
  plainNumber,
  schemaNode,
  SchemaError,
  validate,
  type Leaf,
  type SchemaNode,
  type ValidationError,
} from './json-schema.js';
export {
  cleanOutput,
  EMPTY_ANSWER,
  NER_INSTRUCTIONS,
  parseBullets,
  parsePairs,
  parseTriplets,
  stripBullet,
} from './lines.js';
export { parseAdeEmail } from './ade-email.js';

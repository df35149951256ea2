// Rewrites the README's generated CLI reference block from the compiled command definitions, and the training config's
// JSON Schema (configs/medlora.schema.json) from the config table (npm run docs).
import { readFileSync, writeFileSync } from 'node:fs';
import { readmeWithReference } from '../dist/src/cli/reference.js';
import { commands } from '../dist/src/cli/commands/index.js';
import { configJsonSchemaText } from '../dist/src/train/config-json-schema.js';

const path = new URL('../README.md', import.meta.url);
writeFileSync(path, readmeWithReference(readFileSync(path, 'utf8')));
console.log(`README.md: CLI reference rewritten (${commands.length} commands)`);

const schemaPath = new URL('../configs/medlora.schema.json', import.meta.url);
writeFileSync(schemaPath, configJsonSchemaText());
console.log('configs/medlora.schema.json: training config JSON Schema rewritten');

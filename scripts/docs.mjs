// Rewrites the README's generated CLI reference block from the compiled command definitions (npm run docs).
import { readFileSync, writeFileSync } from 'node:fs';
import { readmeWithReference } from '../dist/src/cli/reference.js';
import { commands } from '../dist/src/cli/commands/index.js';

const path = new URL('../README.md', import.meta.url);
writeFileSync(path, readmeWithReference(readFileSync(path, 'utf8')));
console.log(`README.md: CLI reference rewritten (${commands.length} commands)`);

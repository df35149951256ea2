// The TypeScript source files below a folder (recursively; .d.ts left out), for the tests that read src/ as text:
// the layer order (layering.test.ts) and the flag words of library errors (flag-words.test.ts).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

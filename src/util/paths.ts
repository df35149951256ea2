// Where things are: the package root (for bundled assets) and ../shared (reference fixtures and corpora used by tests).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder holding package.json), found from this compiled file's location. */
export function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, 'package.json'))) return d;
    d = dirname(d);
  }
  throw new Error('medlora: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url));
}

/** Path inside the shared fixtures folder: $MEDLORA_SHARED, or ../shared beside the package root. */
export function sharedPath(...parts: string[]): string {
  const base = process.env.MEDLORA_SHARED ?? resolve(packageRoot(), '..', 'shared');
  return join(base, ...parts);
}

export function hasShared(): boolean {
  return existsSync(sharedPath('fixtures'));
}

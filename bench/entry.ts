// Shared entry point of the bench scripts: run `main` only when the file is executed (not imported by a test), and
// print a MedloraError as one line with exit code 1.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MedloraError } from '../src/util/errors.js';

/**
 * Whether the module at `moduleUrl` is the script node was started with. Compared as real paths: node resolves
 * symbolic links in import.meta.url but not in argv[1], and on a GPU machine dist/ is a link to .gpu/dist
 * (../shared/gpu/on-device.sh), where a plain comparison made every bench exit at once without running.
 */
export function isMain(moduleUrl: string): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(fileURLToPath(moduleUrl)) === realpathSync(process.argv[1]);
  } catch {
    return false;
  }
}

export function runIfMain(moduleUrl: string, main: () => void): void {
  if (!isMain(moduleUrl)) return;
  try {
    main();
  } catch (e) {
    if (e instanceof MedloraError) {
      console.error(`medlora bench: ${e.message}`);
      process.exit(1);
    }
    throw e;
  }
}

// Shared entry point of the bench scripts: run `main` only when the file is executed (not imported by a test), and
// print a MedloraError as one line with exit code 1.
import { pathToFileURL } from 'node:url';
import { MedloraError } from '../src/util/errors.js';

export function runIfMain(moduleUrl: string, main: () => void): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
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

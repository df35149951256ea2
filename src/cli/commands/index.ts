// The registry of every `medlora` command. Each command lives in its own file in this folder; add one import and one
// entry below per command.
import type { CommandSpec } from '../command.js';
import { dataImport } from './data-import.js';
import { dataStats } from './data-stats.js';
import { dataSplit } from './data-split.js';
import { dataPreview } from './data-preview.js';

export const commands: CommandSpec[] = [
  dataImport,
  dataStats,
  dataSplit,
  dataPreview,
];

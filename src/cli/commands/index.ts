// The registry of every `medlora` command. Each command lives in its own file in this folder; add one import and one
// entry below per command.
import type { CommandSpec } from '../command.js';
import { doctor } from './doctor.js';

export const commands: CommandSpec[] = [
  doctor,
];

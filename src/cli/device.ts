// The `--device auto|cpu|cuda|cuda:N` option of the commands that run a model for inference (eval, extract, serve,
// generate, loss), resolved once per process with the flag's name in its errors (src/tensor/device.ts resolveDevice).
import type { OptionSpec, ParsedArgs } from './command.js';
import { str } from './command.js';
import type { Device } from '../tensor/index.js';

export const DEVICE_OPTION: OptionSpec = {
  type: 'string',
  value: 'auto|cpu|cuda|cuda:N',
  default: 'auto',
  description:
    'where the model computes: auto = a CUDA device when the addon is built against a CUDA PyTorch and one is visible, else the CPU',
};

/**
 * --device resolved against this addon and machine; the note saying which CUDA device auto chose goes to stderr. With
 * `ranks` (eval, extract), a process that is one rank of several (torchrun, --nproc-per-node) takes the CUDA device of
 * its local rank. An impossible choice is a MedloraError that names --device (the CLI prints it as one line).
 */
export async function deviceFromFlag(args: ParsedArgs, o: { ranks?: boolean } = {}): Promise<Device> {
  const { resolveDevice } = await import('../tensor/index.js');
  const rank = o.ranks ? (await import('../train/distributed.js')).distEnvFromProcess() : null;
  const r = resolveDevice(str(args, 'device') ?? 'auto', {
    what: '--device',
    ...(rank ? { localRank: rank.localRank } : {}),
  });
  // the --nproc-per-node launcher only checks the choice; each rank says which device it took
  const launcher = o.ranks && !rank && Number(args.options['nproc-per-node']) > 1;
  if (r.note !== null && !launcher) console.error(`note: ${r.note}`);
  return r.device;
}

// The CLI side of data parallelism, shared by `medlora train` and `medlora eval`: the --nproc-per-node /
// --dist-timeout / --dist-backend flags, launching local ranks, or joining the job torchrun started.
import type { OptionSpec, ParsedArgs } from './command.js';
import { str } from './command.js';
import { MedloraError } from '../util/errors.js';
import { resolveDevice } from '../tensor/device.js';
import type { DataParallel } from '../train/distributed.js';

export const DIST_OPTIONS: Record<string, OptionSpec> = {
  'nproc-per-node': {
    type: 'number',
    value: 'N',
    description:
      "run N local ranks (data parallel over c10d, spawned with torchrun's environment; see docs/DISTRIBUTED.md)",
  },
  'dist-timeout': {
    type: 'number',
    value: 'S',
    description: 'several ranks: seconds a rank waits for the others at a collective before failing (default 1800)',
  },
  'dist-backend': {
    type: 'string',
    value: 'gloo|nccl',
    description: 'several ranks: c10d backend (default gloo; train: nccl when its ranks are on CUDA)',
  },
};

/**
 * --nproc-per-node N > 1: run this same command as N ranks and return the job's exit code. Otherwise, when the
 * environment says this process is one rank of several (torchrun, SLURM + torchrun, PyTorchJob), join the process
 * group; else run alone (parallel undefined).
 */
export async function startRanks(
  cmd: string,
  args: ParsedArgs,
  device?: { spec: string; what: string },
): Promise<{ exitCode: number } | { parallel?: DataParallel }> {
  const dist = await import('../train/distributed.js');
  const nproc = args.options['nproc-per-node'];
  if (nproc !== undefined) {
    if (!Number.isInteger(nproc) || (nproc as number) < 1)
      throw new MedloraError(`medlora ${cmd}: --nproc-per-node must be a positive integer, got ${String(nproc)}`);
    if (dist.distEnvFromProcess())
      throw new MedloraError(
        `medlora ${cmd}: --nproc-per-node: this process is already a rank (WORLD_SIZE is set); launch with torchrun or with --nproc-per-node, not both`,
      );
    if ((nproc as number) > 1) {
      // every rank runs the same command line without the launcher's flag
      const argv = process.argv.slice(2);
      const rest: string[] = [];
      for (let i = 0; i < argv.length; i++) {
        if (argv[i] === '--nproc-per-node') i++;
        else if (!argv[i]!.startsWith('--nproc-per-node=')) rest.push(argv[i]!);
      }
      return {
        exitCode: await dist.launchLocal({
          nproc: nproc as number,
          script: process.argv[1]!,
          args: rest,
          masterAddr: process.env.MASTER_ADDR || undefined,
          masterPort: Number(process.env.MASTER_PORT ?? 0) || undefined,
        }),
      };
    }
  }
  const timeout = args.options['dist-timeout'];
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0))
    throw new MedloraError(
      `medlora ${cmd}: --dist-timeout must be a positive number of seconds, got ${String(timeout)}`,
    );
  const backend = str(args, 'dist-backend');
  if (backend !== undefined && backend !== 'gloo' && backend !== 'nccl')
    throw new MedloraError(`medlora ${cmd}: --dist-backend must be gloo or nccl, got ${backend}`);
  const denv = dist.distEnvFromProcess();
  // a command that places its tensors by a device setting (train) gets NCCL for CUDA ranks and Gloo for CPU ones
  const onCuda =
    device !== undefined &&
    denv != null &&
    resolveDevice(device.spec, { what: device.what, field: 'device', localRank: denv.localRank }).device !== 'cpu';
  if (device !== undefined && denv != null) {
    if (backend === 'nccl' && !onCuda)
      throw new MedloraError(
        `medlora ${cmd}: --dist-backend nccl: NCCL reduces CUDA tensors only, and ${device.what} ${device.spec} is the CPU here; use gloo or a CUDA device`,
      );
    if (backend === 'gloo' && onCuda)
      throw new MedloraError(
        `medlora ${cmd}: --dist-backend gloo: ${device.what} ${device.spec} puts this rank on CUDA, whose gradients medlora reduces with NCCL; leave --dist-backend out or set nccl`,
      );
  } else if (backend === 'nccl') {
    throw new MedloraError(
      `medlora ${cmd}: --dist-backend nccl: ${cmd}'s ranks exchange CPU tensors, and NCCL reduces CUDA tensors only; ` +
        'use gloo (the default). NCCL is for training ranks on CUDA (training.device; docs/DISTRIBUTED.md).',
    );
  }
  if (!denv) return {};
  // several ranks on one node share its cores (torchrun sets OMP_NUM_THREADS=1 for the same reason)
  if (args.options.threads === undefined && !process.env.MEDLORA_NUM_THREADS) {
    const { physicalCores, setNumThreads } = await import('../tensor/index.js');
    setNumThreads(Math.max(1, Math.floor(physicalCores() / denv.localWorldSize)));
  }
  return {
    parallel: dist.initDataParallel(denv, {
      timeoutS: timeout as number | undefined,
      backend: backend ?? (onCuda ? 'nccl' : undefined),
    }),
  };
}

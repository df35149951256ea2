// Where a run computes: a user's device word ('auto', 'cpu', 'cuda', 'cuda:N') resolved against what this process's
// addon and machine have, with an error that names the setting when the word cannot be honoured.
import type { Device } from './dtype.js';
import { MedloraError } from '../util/errors.js';
import { cudaDeviceCount, engineInfo } from './engine.js';

/** What a user may write: 'auto' picks CUDA when the addon has it and a device is visible, else the CPU. */
export type DeviceSpec = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`;

export const DEVICE_SPEC_PATTERN = /^(auto|cpu|cuda|cuda:\d+)$/;

/** The CUDA index of a device ('cuda' is device 0), undefined for the CPU. */
export function cudaIndex(device: Device): number | undefined {
  return device === 'cpu' ? undefined : device === 'cuda' ? 0 : Number(device.slice(5));
}

export interface ResolvedDevice {
  device: Device;
  /** how the choice was made, for the run's log (null when the user named the device exactly) */
  note: string | null;
}

export interface DeviceFacts {
  /** the addon was compiled against a CUDA libtorch */
  compiledWithCuda: boolean;
  /** CUDA devices this process sees */
  count: number;
}

function facts(): DeviceFacts {
  return { compiledWithCuda: engineInfo().compiledWithCuda, count: cudaDeviceCount() };
}

/**
 * Resolve a device word. `what` names the setting in errors (e.g. "training.device", "--device"); `localRank` is the
 * rank's index on its node under torchrun (each rank takes its own GPU, as torch's DDP recipes do); `known` replaces the
 * engine's facts (tests). Errors are MedloraErrors about `field` when given; their text says "GPU", not "device", because
 * the CLI turns a field's name in a message into its flag.
 */
export function resolveDevice(
  spec: string,
  o: { what: string; field?: string; localRank?: number; known?: DeviceFacts },
): ResolvedDevice {
  const fail = (msg: string): never => {
    throw new MedloraError(msg, o.field ? { field: o.field } : {});
  };
  if (!DEVICE_SPEC_PATTERN.test(spec))
    fail(`${o.what}: expected auto, cpu, cuda or cuda:N, got ${JSON.stringify(spec)}`);
  if (spec === 'cpu') return { device: 'cpu', note: null };
  const f = o.known ?? facts();
  const rank = o.localRank ?? 0;
  if (spec === 'auto') {
    if (!f.compiledWithCuda || f.count === 0) return { device: 'cpu', note: null };
    if (rank >= f.count)
      fail(
        `${o.what} auto: local rank ${rank} but only ${f.count} CUDA GPU(s) visible; start at most ${f.count} ranks per node or set ${o.what} cpu`,
      );
    return {
      device: `cuda:${rank}`,
      // said until a GPU run has checked the CUDA path against the references (docs/PERFORMANCE.md, "On a GPU")
      note:
        `${o.what} auto: CUDA GPU ${rank} of ${f.count} (set cpu to stay on the CPU); medlora's CUDA path has not yet ` +
        'been checked on a GPU against its reference fixtures (scripts/gpu-check.sh does that)',
    };
  }
  if (!f.compiledWithCuda)
    fail(
      `${o.what} ${spec}: this medlora addon was built against a CPU-only libtorch; rebuild it against a CUDA PyTorch ` +
        '(docs/DISTRIBUTED.md, "Building against a CUDA PyTorch") or use cpu',
    );
  if (f.count === 0)
    fail(`${o.what} ${spec}: no CUDA GPU is visible to this process (check CUDA_VISIBLE_DEVICES and the driver)`);
  const index = spec === 'cuda' ? rank : Number(spec.slice(5));
  if (index >= f.count)
    fail(
      `${o.what} ${spec}: CUDA GPU ${index} requested${spec === 'cuda' ? ` (local rank ${rank})` : ''}, but only ${f.count} visible (0-${f.count - 1})`,
    );
  return { device: `cuda:${index}`, note: null };
}

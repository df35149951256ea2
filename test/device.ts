// The test-device switch: MEDLORA_TEST_DEVICE (cpu by default; cuda or cuda:N) puts the models of the numerics tests
// against the independent references on that device (scripts/gpu-check.sh runs them so on a GPU). At cpu nothing changes.
import { loadModel, type LoadOptions } from '../src/model/load.js';
import type { LoadedModel } from '../src/model/registry.js';
import { resolveDevice, type Device } from '../src/tensor/index.js';

/** The word as given (cpu when unset). */
export const TEST_DEVICE_SPEC = process.env.MEDLORA_TEST_DEVICE?.trim() || 'cpu';

/**
 * Where the switched tests compute. 'auto' is refused: a run must say which device it checked. cuda without a CUDA
 * addon or device fails here, at import, with resolveDevice's message (a GPU run must not silently test the CPU).
 */
export const TEST_DEVICE: Device = ((): Device => {
  if (TEST_DEVICE_SPEC === 'auto') throw new Error('MEDLORA_TEST_DEVICE: give cpu, cuda or cuda:N (not auto)');
  return resolveDevice(TEST_DEVICE_SPEC, { what: 'MEDLORA_TEST_DEVICE' }).device;
})();

export const ON_CUDA = TEST_DEVICE !== 'cpu';

if (ON_CUDA) console.log(`  test device: ${TEST_DEVICE} (MEDLORA_TEST_DEVICE=${TEST_DEVICE_SPEC})`);

/** For the tests that stay on the CPU (native kernels, threads, malloc, CLI errors): skipped in a CUDA run. */
export const cpuOnly: false | string = ON_CUDA ? `CPU-only test (MEDLORA_TEST_DEVICE=${TEST_DEVICE_SPEC})` : false;

/** loadModel onto the test device; tensors read back with toFloat32Array / toNumbers / item are copied to the CPU. */
export function loadTestModel(dir: string, opts: LoadOptions = {}): LoadedModel {
  return loadModel(dir, { ...opts, device: TEST_DEVICE });
}

/**
 * A tolerance per device. `cpu` is the test's own (unchanged); `cuda` applies on a CUDA device and is a GUESS until
 * the first GPU run (scripts/gpu-check.sh) confirms it: every comparison prints its max difference either way, so
 * that run records what the GPU gives. Omitted, the CPU tolerance applies on CUDA too (F32: libtorch keeps TF32 off
 * for matmuls by default, so F32 stays close).
 */
export function perDevice<T>(cpu: T, cuda?: T): T {
  return ON_CUDA && cuda !== undefined ? cuda : cpu;
}

/** A comparison's label, with the device named off the CPU (CPU output stays as it was). */
export function onDevice(label: string): string {
  return ON_CUDA ? `${label} [${TEST_DEVICE}]` : label;
}

/**
 * `medlora train` flags that put a training run on the test device: always named, so that the default (cpu) means the
 * CPU on a machine with a GPU too (training.device's own default, auto, would pick the GPU there).
 */
export function trainDeviceArgs(): string[] {
  return ['--device', TEST_DEVICE];
}

// resolveDevice: the device words against what an addon and a machine have (facts given, so the CUDA cases run here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cudaDeviceCount,
  cudaMemoryStats,
  cudaResetPeakMemoryStats,
  cudaSynchronize,
  engineInfo,
  resolveDevice,
} from '../../src/tensor/index.js';
import { MedloraError } from '../../src/util/errors.js';

const cpuOnly = { compiledWithCuda: false, count: 0 };
const noGpu = { compiledWithCuda: true, count: 0 };
const twoGpus = { compiledWithCuda: true, count: 2 };
const what = 'training.device';

test('auto is the CPU unless the addon has CUDA and a device is visible; then the local rank picks its GPU', () => {
  assert.deepEqual(resolveDevice('auto', { what, known: cpuOnly }), { device: 'cpu', note: null });
  assert.deepEqual(resolveDevice('auto', { what, known: noGpu }), { device: 'cpu', note: null });
  const r = resolveDevice('auto', { what, known: twoGpus, localRank: 1 });
  assert.equal(r.device, 'cuda:1');
  assert.match(r.note!, /training\.device auto: CUDA GPU 1 of 2/);
  assert.match(r.note!, /not yet been checked on a GPU/);
  assert.throws(
    () => resolveDevice('auto', { what, known: twoGpus, localRank: 2 }),
    /local rank 2 but only 2 CUDA GPU/,
  );
});

test('cuda and cuda:N are checked against the build and the visible devices, naming the setting', () => {
  assert.equal(resolveDevice('cuda', { what, known: twoGpus }).device, 'cuda:0');
  assert.equal(resolveDevice('cuda', { what, known: twoGpus, localRank: 1 }).device, 'cuda:1');
  assert.equal(resolveDevice('cuda:1', { what, known: twoGpus }).device, 'cuda:1');
  assert.throws(
    () => resolveDevice('cuda', { what, field: 'device', known: cpuOnly }),
    (e: unknown) =>
      e instanceof MedloraError && e.field === 'device' && /training\.device cuda: .*CPU-only libtorch/.test(e.message),
  );
  assert.throws(() => resolveDevice('cuda:0', { what, known: noGpu }), /no CUDA GPU is visible/);
  assert.throws(
    () => resolveDevice('cuda:2', { what, known: twoGpus }),
    /CUDA GPU 2 requested, but only 2 visible \(0-1\)/,
  );
  assert.throws(() => resolveDevice('cuda', { what, known: twoGpus, localRank: 3 }), /\(local rank 3\)/);
  for (const bad of ['gpu', 'CUDA', 'cuda:', 'cuda:x', 'mps', ''])
    assert.throws(() => resolveDevice(bad, { what }), /expected auto, cpu, cuda or cuda:N/, bad);
});

test('on this machine: cpu is the CPU and auto agrees with the build', () => {
  assert.equal(resolveDevice('cpu', { what }).device, 'cpu');
  const info = engineInfo();
  const auto = resolveDevice('auto', { what }).device;
  if (!info.compiledWithCuda) assert.equal(auto, 'cpu');
  console.log(`# this addon: CUDA compiled ${info.compiledWithCuda}; auto -> ${auto}`);
});

test(
  'CUDA synchronize and memory counters: clear engine errors where there is no CUDA device',
  { skip: cudaDeviceCount() > 0 && 'a CUDA device is visible' },
  () => {
    assert.throws(() => cudaSynchronize(0), /^Error: medlora engine: cudaSynchronize: no CUDA device is visible/);
    const noCuda = engineInfo().compiledWithCuda ? /no CUDA device is visible/ : /this addon was built without CUDA/;
    assert.throws(() => cudaMemoryStats(0), noCuda);
    assert.throws(() => cudaResetPeakMemoryStats(0), noCuda);
  },
);

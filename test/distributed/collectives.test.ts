// The c10d bindings (src/tensor/dist.ts) across 2 real processes over Gloo on 127.0.0.1: all-reduce (sum, max),
// broadcast from rank 1, all-gather, barrier; errors: a rank alone times out naming itself, bad arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { distAvailable, ProcessGroup } from '../../src/tensor/dist.js';
import { freePort } from '../../src/train/distributed.js';

const WORKER = join(import.meta.dirname, 'worker.js');
const skip = distAvailable().gloo ? false : 'the addon was built without c10d';

async function ranks(
  n: number,
  what: string,
  env: Record<string, string> = {},
): Promise<Array<Record<string, unknown>>> {
  const port = String(await freePort());
  return Promise.all(
    Array.from(
      { length: n },
      (_, r) =>
        new Promise<Record<string, unknown>>((res) => {
          const c = spawn(process.execPath, [WORKER, what], {
            env: { ...process.env, RANK: String(r), WORLD_SIZE: String(n), MASTER_PORT: port, ...env },
            stdio: ['ignore', 'pipe', 'inherit'],
          });
          let out = '';
          c.stdout!.on('data', (d: Buffer) => {
            out += d.toString();
          });
          c.on('exit', (code) =>
            res({ code, ...(JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>) }),
          );
        }),
    ),
  );
}

test(
  '2 ranks: all-reduce sum/max, broadcast from rank 1, all-gather in rank order, barrier, use after destroy',
  { skip },
  async () => {
    const rs = await ranks(2, 'all');
    for (const r of rs) {
      assert.equal(r.code, 0);
      assert.deepEqual(r.sum, [3, 30, 1]);
      assert.deepEqual(r.max, [1, 0]);
      assert.deepEqual(r.bcast, [7, 8, 9]);
      assert.deepEqual(r.gather, [0, 0, 1, 2]);
      assert.match(String(r.afterDestroy), /destroyed/);
    }
  },
);

test(
  'errors name the rank: a rank alone cannot join within the timeout; unknown reduce op; bad options',
  { skip },
  async () => {
    const t0 = Date.now();
    const [alone] = await ranks(1, 'all', { WORLD_SIZE: '2', TIMEOUT_MS: '2000' });
    const took = Date.now() - t0;
    assert.match(String(alone!.error), /rank 0\/2: joining the process group at 127\.0\.0\.1:\d+/);
    assert.ok(took < 15_000, `took ${took} ms`);
    const rs = await ranks(2, 'bad-op');
    for (const r of rs) assert.match(String(r.error), /reduce op must be sum, max or min/);
    assert.throws(
      () => ProcessGroup.init({ rank: 2, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 1, timeoutMs: 1000 }),
      /need 0 <= rank < worldSize/,
    );
    assert.throws(
      () =>
        ProcessGroup.init({
          rank: 0,
          worldSize: 1,
          masterAddr: '127.0.0.1',
          masterPort: 1,
          timeoutMs: 1000,
          backend: 'mpi' as 'gloo',
        }),
      /backend must be 'gloo' or 'nccl'/,
    );
    assert.throws(
      () => ProcessGroup.init({ rank: 0, worldSize: 2, masterAddr: '127.0.0.1', masterPort: 70000, timeoutMs: 1000 }),
      /masterPort must be in 1\.\.65535/,
    );
  },
);

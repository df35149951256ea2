// BatchQueue: one batch at a time, oldest first, compatible jobs joined up to maxBatch texts, null keys alone,
// failed batches retried job by job.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchQueue } from '../../src/serve/queue.js';

interface J {
  key: string | null;
  size: number;
  name: string;
  bad?: boolean;
}

function recorder(delayMs = 0) {
  const calls: string[][] = [];
  let active = 0;
  let maxActive = 0;
  const run = async (jobs: J[]): Promise<string[]> => {
    active++;
    maxActive = Math.max(maxActive, active);
    calls.push(jobs.map((j) => j.name));
    await new Promise((r) => setTimeout(r, delayMs));
    active--;
    if (jobs.some((j) => j.bad)) throw new Error('bad job in batch');
    return jobs.map((j) => `done ${j.name}`);
  };
  return { calls, run, maxActive: () => maxActive };
}

test('jobs queued together share batches of at most maxBatch texts, oldest first; runs never overlap', async () => {
  const r = recorder(5);
  const q = new BatchQueue<J, string>(r.run, { maxBatch: 4, windowMs: 1 });
  const names = ['a', 'b', 'c', 'd', 'e'];
  const out = await Promise.all(names.map((name) => q.push({ key: 'k', size: 1, name })));
  assert.deepEqual(
    out.map((o) => o.result),
    names.map((n) => `done ${n}`),
  );
  assert.deepEqual(r.calls, [['a', 'b', 'c', 'd'], ['e']]);
  assert.deepEqual(
    out.map((o) => o.batch.texts),
    [4, 4, 4, 4, 1],
  );
  assert.equal(r.maxActive(), 1);
  assert.equal(q.batches, 2);
});

test('different keys do not mix; a later compatible job joins the oldest; null keys and oversize jobs run alone', async () => {
  const r = recorder();
  const q = new BatchQueue<J, string>(r.run, { maxBatch: 4, windowMs: 1 });
  await Promise.all([
    q.push({ key: 'x', size: 1, name: 'x1' }),
    q.push({ key: 'y', size: 1, name: 'y1' }),
    q.push({ key: 'x', size: 2, name: 'x2' }),
    q.push({ key: 'x', size: 2, name: 'x3' }), // would make 5 texts with x1 + x2: waits
    q.push({ key: null, size: 1, name: 'n1' }),
    q.push({ key: null, size: 1, name: 'n2' }),
    q.push({ key: 'y', size: 9, name: 'big' }),
    q.push({ key: 'y', size: 1, name: 'y2' }),
  ]);
  assert.deepEqual(r.calls, [['x1', 'x2'], ['y1', 'y2'], ['x3'], ['n1'], ['n2'], ['big']]);
});

test('a failing batch is retried job by job: only the bad job gets the error', async () => {
  const r = recorder();
  const q = new BatchQueue<J, string>(r.run, { maxBatch: 8, windowMs: 1 });
  const ps = [
    q.push({ key: 'k', size: 1, name: 'ok1' }),
    q.push({ key: 'k', size: 1, name: 'bad', bad: true }),
    q.push({ key: 'k', size: 1, name: 'ok2' }),
  ];
  const res = await Promise.allSettled(ps);
  assert.deepEqual(
    res.map((x) => x.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.match(String((res[1] as PromiseRejectedResult).reason), /bad job in batch/);
  assert.deepEqual(r.calls, [['ok1', 'bad', 'ok2'], ['ok1'], ['bad'], ['ok2']]);
  // a synchronous throw is handled the same way
  const q2 = new BatchQueue<J, string>(
    () => {
      throw new Error('sync boom');
    },
    { maxBatch: 2, windowMs: 0 },
  );
  await assert.rejects(q2.push({ key: 'k', size: 1, name: 'z' }), /sync boom/);
});

test('idle() waits for queued and running jobs', async () => {
  const r = recorder(20);
  const q = new BatchQueue<J, string>(r.run, { maxBatch: 1, windowMs: 1 });
  await q.idle(); // nothing queued: resolves at once
  const done: string[] = [];
  for (const name of ['a', 'b', 'c']) void q.push({ key: 'k', size: 1, name }).then(() => done.push(name));
  assert.equal(q.waiting, 3);
  await q.idle();
  assert.deepEqual(done, ['a', 'b', 'c']);
  assert.equal(q.waiting, 0);
  assert.equal(q.busy, false);
  assert.throws(
    () => new BatchQueue<J, string>(r.run, { maxBatch: 0, windowMs: 1 }),
    /maxBatch must be a positive integer/,
  );
});

// A rank for collectives.test.ts: joins the group from torchrun's variables and runs the collective named in argv[2],
// printing one JSON line of results (or the error message).
import { tensor } from '../../src/tensor/index.js';
import { ProcessGroup } from '../../src/tensor/dist.js';

const rank = Number(process.env.RANK),
  worldSize = Number(process.env.WORLD_SIZE);
const what = process.argv[2];
try {
  const pg = ProcessGroup.init({
    rank,
    worldSize,
    masterAddr: '127.0.0.1',
    masterPort: Number(process.env.MASTER_PORT),
    timeoutMs: Number(process.env.TIMEOUT_MS ?? 20000),
  });
  const out: Record<string, unknown> = { rank };
  if (what === 'all') {
    const a = tensor([rank + 1, 10 * (rank + 1), 0.5]);
    pg.allReduce([a], 'sum');
    out.sum = Array.from(a.toArray() as Float32Array);
    const m = tensor([rank, -rank], { dtype: 'i64' });
    pg.allReduce([m], 'max');
    out.max = Array.from(m.toArray() as BigInt64Array, Number);
    const b = tensor(rank === 1 ? [7, 8, 9] : [0, 0, 0]);
    pg.broadcast([b], 1);
    out.bcast = Array.from(b.toArray() as Float32Array);
    out.gather = Array.from(pg.allGather(tensor([rank, rank * 2], { dtype: 'i32' })).toArray() as Int32Array);
    pg.barrier();
    pg.destroy();
    try {
      pg.barrier();
    } catch (e) {
      out.afterDestroy = (e as Error).message;
    }
  } else if (what === 'bad-op') {
    try {
      pg.allReduce([tensor([1])], 'prod' as 'sum');
    } catch (e) {
      out.error = (e as Error).message;
    }
    // the argument error is raised before any traffic: leave together, so no rank exits while the other still joins
    pg.barrier();
  }
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ rank, error: (e as Error).message }));
}

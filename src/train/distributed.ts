// Data-parallel training over libtorch's c10d (src/tensor/dist.ts): the torchrun environment (RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; torch/distributed/run.py), the trainer's TrainerParallel
// (row sharding of each global micro-batch, bucketed gradient all-reduce as DDP does it, 25 MB buckets as DDP's
// bucket_cap_mb default), ordered gathering of per-rank results, and the local launcher behind
// `medlora train --nproc-per-node N` (spawns the ranks with the same variables torchrun sets).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { cat, noGrad, scope, tensor, zeros, type Device, type DType, type Tensor } from '../tensor/index.js';
import { distAvailable, ProcessGroup, type DistBackend } from '../tensor/dist.js';
import { MedloraError } from '../util/errors.js';
import type { TrainerParallel } from './trainer.js';

/** torch's default collective timeout for Gloo/NCCL (30 minutes; torch/distributed/constants.py) */
export const DEFAULT_DIST_TIMEOUT_S = 1800;
/** DDP's default bucket size (bucket_cap_mb = 25) */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** torchrun's agent already serves the TCPStore (TORCHELASTIC_USE_AGENT_STORE=True) */
  agentStore: boolean;
  /** torchrun's restart count (TORCHELASTIC_RESTART_COUNT): each attempt rendezvouses under its own key prefix */
  restart: number;
}

function intVar(env: NodeJS.ProcessEnv, name: string, dflt?: number): number {
  const v = env[name];
  if (v === undefined || v === '') {
    if (dflt !== undefined) return dflt;
    throw new MedloraError(
      `environment variable ${name} is not set (torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)`,
    );
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new MedloraError(`environment variable ${name}=${v} is not a non-negative integer`);
  return n;
}

/** The launcher's variables, or null when this process is not one of several ranks (WORLD_SIZE unset or 1). */
export function distEnvFromProcess(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return null;
  const worldSize = intVar(env, 'WORLD_SIZE');
  if (worldSize <= 1) return null;
  const rank = intVar(env, 'RANK');
  if (rank >= worldSize) throw new MedloraError(`RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr)
    throw new MedloraError('environment variable MASTER_ADDR is not set (the host of rank 0, as torchrun sets it)');
  const masterPort = intVar(env, 'MASTER_PORT');
  if (masterPort < 1 || masterPort > 65535) throw new MedloraError(`MASTER_PORT=${masterPort} is not a TCP port`);
  return {
    rank,
    worldSize,
    masterAddr,
    masterPort,
    localRank: intVar(env, 'LOCAL_RANK', rank),
    localWorldSize: intVar(env, 'LOCAL_WORLD_SIZE', worldSize),
    agentStore: env.TORCHELASTIC_USE_AGENT_STORE === 'True',
    restart: intVar(env, 'TORCHELASTIC_RESTART_COUNT', 0),
  };
}

/** What a failed collective means for the user: which rank saw it, and the likely cause. */
function collectiveError(pg: ProcessGroup, what: string, e: unknown): MedloraError {
  const msg = (e as Error).message ?? String(e);
  return new MedloraError(
    `data-parallel job failed at ${what} on rank ${pg.rank} of ${pg.worldSize}: another rank stopped ` +
      `(it crashed or was killed), or did not answer within the ${pg.timeoutMs / 1000} s timeout. ${msg}`,
    { cause: e },
  );
}

/** Gradient all-reduce and data sharding for the Trainer, over one process group. */
export class DataParallel implements TrainerParallel {
  readonly rank: number;
  readonly worldSize: number;
  /** where the small bookkeeping tensors live: NCCL reduces CUDA tensors only */
  readonly device: Device;
  readonly backend: 'gloo' | 'nccl';

  constructor(
    readonly pg: ProcessGroup,
    readonly bucketBytes = DEFAULT_BUCKET_BYTES,
    readonly localRank = 0,
  ) {
    this.rank = pg.rank;
    this.backend = pg.backend;
    this.worldSize = pg.worldSize;
    this.device = pg.backend === 'nccl' ? `cuda:${localRank}` : 'cpu';
  }

  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof MedloraError) throw e;
      throw collectiveError(this.pg, what, e);
    }
  }

  /**
   * Rank r's rows of a global micro-batch of worldSize * B rows: rows [r*B, (r+1)*B). The last micro-batch of an epoch
   * may be short, so a rank may get fewer rows or none (it then contributes no tokens and zero gradients).
   */
  shard<T>(rows: readonly T[]): T[] {
    const per = Math.ceil(rows.length / this.worldSize);
    return rows.slice(this.rank * per, (this.rank + 1) * per);
  }

  allSum(values: readonly number[]): number[] {
    return this.guard('a sum over ranks', () =>
      scope(() => {
        const t = tensor([...values], { dtype: 'f64', device: this.device });
        this.pg.allReduce([t], 'sum');
        return Array.from(t.to('cpu').toArray() as Float64Array);
      }),
    );
  }

  syncGrads(params: readonly Tensor[]): void {
    this.guard('the gradient all-reduce', () =>
      noGrad(() =>
        scope(() => {
          const grads = params.map((p) => p.grad);
          // a parameter no rank computed a gradient for stays without one (the optimizer then skips it, as in one process)
          const present = this.allSum(grads.map((g) => (g ? 1 : 0)));
          for (const bucket of buckets(params, this.bucketBytes)) {
            scope(() => {
              const flat = cat(
                bucket.map((i) =>
                  (grads[i] ?? zeros(params[i]!.shape, { dtype: params[i]!.dtype, device: params[i]!.device })).reshape(
                    [-1],
                  ),
                ),
                0,
              );
              this.pg.allReduce([flat], 'sum');
              let off = 0;
              for (const i of bucket) {
                const p = params[i]!;
                const n = p.numel;
                if (present[i]! > 0) {
                  const summed = flat.narrow(0, off, n).reshape(p.shape);
                  if (grads[i]) grads[i]!.copy_(summed);
                  else p.grad = summed.clone();
                }
                off += n;
              }
            });
          }
        }),
      ),
    );
  }

  syncParams(params: readonly Tensor[]): void {
    this.guard('the initial parameter broadcast', () =>
      noGrad(() => {
        for (const b of buckets(params, this.bucketBytes)) {
          scope(() => {
            const flat = cat(
              b.map((i) => params[i]!.reshape([-1])),
              0,
            );
            this.pg.broadcast([flat], 0);
            let off = 0;
            for (const i of b) {
              const p = params[i]!;
              p.copy_(flat.narrow(0, off, p.numel).reshape(p.shape));
              off += p.numel;
            }
          });
        }
      }),
    );
  }

  /**
   * Every rank's list, concatenated in rank order (each item a JSON-serialisable value): how sharded eval/extract
   * results come back together. The payload travels as UTF-8 bytes (an all-gather of lengths, then of padded bytes).
   */
  gatherLists<T>(items: readonly T[]): T[][] {
    return this.guard('gathering results', () =>
      scope(() => {
        const bytes = new TextEncoder().encode(JSON.stringify(items));
        const lens = this.pg.allGather(tensor([bytes.length], { dtype: 'i64', device: this.device }));
        const sizes = Array.from(lens.to('cpu').toArray() as BigInt64Array, Number);
        const max = Math.max(1, ...sizes);
        const buf = new Uint8Array(max);
        buf.set(bytes);
        const all = this.pg.allGather(tensor(buf, { dtype: 'u8', device: this.device }));
        const data = all.to('cpu').toArray() as Uint8Array;
        return sizes.map((n, r) => JSON.parse(new TextDecoder().decode(data.subarray(r * max, r * max + n))) as T[]);
      }),
    );
  }

  barrier(): void {
    this.guard('a barrier', () => this.pg.barrier());
  }

  destroy(): void {
    this.pg.destroy();
  }
}

/** Parameter indices grouped by dtype and device, each group cut into buckets of about maxBytes (in order). */
function buckets(params: readonly Tensor[], maxBytes: number): number[][] {
  const out: number[][] = [];
  const open = new Map<string, { idx: number[]; bytes: number }>();
  params.forEach((p, i) => {
    const key = `${p.dtype}@${p.device}`;
    let b = open.get(key);
    if (!b) {
      b = { idx: [], bytes: 0 };
      open.set(key, b);
    }
    b.idx.push(i);
    b.bytes += p.numel * bytesOf(p.dtype);
    if (b.bytes >= maxBytes) {
      out.push(b.idx);
      open.delete(key);
    }
  });
  for (const b of open.values()) out.push(b.idx);
  return out;
}

function bytesOf(d: DType): number {
  return d === 'f64' || d === 'i64' ? 8 : d === 'f32' || d === 'i32' ? 4 : d === 'bf16' || d === 'f16' ? 2 : 1;
}

export interface InitOptions {
  timeoutS?: number;
  backend?: DistBackend;
  bucketBytes?: number;
}

/** Join the job described by the launcher's variables (CUDA ranks use NCCL when the addon has it, else Gloo). */
export function initDataParallel(env: DistEnv, o: InitOptions = {}): DataParallel {
  if (!distAvailable().gloo) {
    throw new MedloraError(
      `WORLD_SIZE=${env.worldSize}: this medlora build has no torch.distributed (the native addon was built ` +
        "against a libtorch without c10d headers, e.g. Debian's 1.13); rebuild it against a pip PyTorch 2.x (node native/build.mjs)",
    );
  }
  const timeoutS = o.timeoutS ?? DEFAULT_DIST_TIMEOUT_S;
  let pg: ProcessGroup;
  try {
    pg = ProcessGroup.init({
      rank: env.rank,
      worldSize: env.worldSize,
      masterAddr: env.masterAddr,
      masterPort: env.masterPort,
      timeoutMs: timeoutS * 1000,
      backend: o.backend ?? 'gloo',
      agentStore: env.agentStore,
      prefix: `medlora/attempt_${env.restart}/`,
    });
  } catch (e) {
    throw new MedloraError(
      `rank ${env.rank} of ${env.worldSize} could not join the job at ${env.masterAddr}:${env.masterPort} ` +
        `within ${timeoutS} s (are all ranks started, and is MASTER_ADDR reachable?): ${(e as Error).message}`,
      { cause: e },
    );
  }
  return new DataParallel(pg, o.bucketBytes, env.localRank);
}

/** A free TCP port on 127.0.0.1 (the OS picks it; MASTER_PORT 0 means this). */
export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export interface LaunchOptions {
  nproc: number;
  /** node script and its arguments for every rank (the launcher's own flag removed) */
  script: string;
  args: string[];
  masterAddr?: string;
  /** 0 or absent: a free port */
  masterPort?: number;
  /** messages from the launcher itself */
  log?: (line: string) => void;
}

/**
 * Run nproc ranks of `node script args` on this machine with torchrun's variables (MASTER_ADDR 127.0.0.1). Rank 0
 * keeps stdout; every rank keeps stderr. When one rank fails, the others are stopped (SIGTERM, then SIGKILL after 5 s)
 * and its exit code is returned; Ctrl-C reaches every rank (they agree to checkpoint and stop).
 */
export async function launchLocal(o: LaunchOptions): Promise<number> {
  if (!Number.isInteger(o.nproc) || o.nproc < 1)
    throw new MedloraError(`nproc must be a positive integer, got ${o.nproc}`);
  const port = o.masterPort ? o.masterPort : await freePort();
  const addr = o.masterAddr ?? '127.0.0.1';
  // torchrun sets OMP_NUM_THREADS=1 for several ranks per node; medlora's equivalent is an even share of the cores
  const threads = String(Math.max(1, Math.floor(cpus().length / o.nproc)));
  const children: ChildProcess[] = [];
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const onSigint = (): void => {
    /* the ranks got it too (same process group); they stop together */
  };
  process.on('SIGINT', onSigint);
  try {
    return await new Promise<number>((resolve) => {
      let running = o.nproc;
      let firstFailure: number | null = null;
      let killTimer: NodeJS.Timeout | undefined;
      const stopOthers = (): void => {
        for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
        killTimer = setTimeout(() => {
          for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        }, 5000);
        killTimer.unref();
      };
      for (let r = 0; r < o.nproc; r++) {
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          MASTER_ADDR: addr,
          MASTER_PORT: String(port),
          RANK: String(r),
          WORLD_SIZE: String(o.nproc),
          LOCAL_RANK: String(r),
          LOCAL_WORLD_SIZE: String(o.nproc),
          GROUP_RANK: '0',
          ROLE_RANK: String(r),
          ROLE_WORLD_SIZE: String(o.nproc),
        };
        if (!env.MEDLORA_NUM_THREADS) env.MEDLORA_NUM_THREADS = threads;
        const c = spawn(process.execPath, [o.script, ...o.args], {
          env,
          stdio: ['ignore', r === 0 ? 'inherit' : 'ignore', 'inherit'],
        });
        children.push(c);
        c.on('exit', (code, signal) => {
          running--;
          const status = code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 1) : 1);
          if (status !== 0 && firstFailure === null) {
            firstFailure = status;
            log(
              status === 130
                ? `medlora launcher: rank ${r} was interrupted (exit code 130)`
                : `medlora launcher: rank ${r} exited with ${signal ? `signal ${signal}` : `code ${code}`}; stopping the other ranks`,
            );
            stopOthers();
          }
          if (running === 0) {
            if (killTimer) clearTimeout(killTimer);
            resolve(firstFailure ?? 0);
          }
        });
      }
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
}

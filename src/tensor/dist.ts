// Process groups over libtorch's c10d (native/src/dist.cc): TCPStore rendezvous, ProcessGroupGloo (CPU) or
// ProcessGroupNCCL (CUDA), and blocking collectives with a timeout. Errors are Errors naming the rank that saw them.
import { MedloraError } from '../util/errors.js';
import { N, type Handle } from './native.js';
import { fromHandle, type Tensor } from './tensor.js';

type GroupHandle = { readonly __medloraGroup: unique symbol };

export type DistBackend = 'gloo' | 'nccl';
export type ReduceOp = 'sum' | 'max' | 'min';

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  /** host of the TCPStore (torchrun's MASTER_ADDR) */
  masterAddr: string;
  masterPort: number;
  /** every rendezvous and collective fails after this long instead of hanging */
  timeoutMs: number;
  backend?: DistBackend;
  /** the store's server is torchrun's agent (TORCHELASTIC_USE_AGENT_STORE=True): rank 0 connects as a client */
  agentStore?: boolean;
  /** key prefix in the store (torchrun's restarts use a fresh one) */
  prefix?: string;
}

/** Whether this addon was built with c10d (pip PyTorch 2.x) and with NCCL (a CUDA PyTorch). */
export function distAvailable(): { gloo: boolean; nccl: boolean } {
  return {
    gloo: (N as unknown as { distAvailable: boolean }).distAvailable === true,
    nccl: (N as unknown as { distNccl: boolean }).distNccl === true,
  };
}

/** One process group; collectives block until every rank took part, the timeout passed, or a peer failed. */
export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: DistBackend;
  readonly timeoutMs: number;
  private handle: GroupHandle | null;

  private constructor(h: GroupHandle, o: ProcessGroupOptions) {
    this.handle = h;
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.backend = o.backend ?? 'gloo';
    this.timeoutMs = o.timeoutMs;
  }

  /** Join (rank 0 serves the store unless agentStore); blocks until all ranks joined or the timeout passed. */
  static init(o: ProcessGroupOptions): ProcessGroup {
    if (o.backend !== undefined && o.backend !== 'gloo' && o.backend !== 'nccl')
      throw new MedloraError(`process group backend must be 'gloo' or 'nccl' (got '${String(o.backend)}')`);
    if (!distAvailable().gloo) N.distInit(o); // throws the addon's own explanation
    const h = N.distInit({ ...o, backend: o.backend ?? 'gloo', prefix: o.prefix ?? 'medlora/' }) as GroupHandle;
    return new ProcessGroup(h, o);
  }

  private h(): GroupHandle {
    if (!this.handle) throw new MedloraError(`rank ${this.rank}: the process group was destroyed`);
    return this.handle;
  }

  /** In place: every tensor becomes the reduction over ranks (contiguous tensors). */
  allReduce(tensors: readonly Tensor[], op: ReduceOp = 'sum'): void {
    N.distAllReduce(
      this.h(),
      tensors.map((t) => t.h),
      op,
    );
  }

  /** In place: every tensor becomes root's. */
  broadcast(tensors: readonly Tensor[], root = 0): void {
    N.distBroadcast(
      this.h(),
      tensors.map((t) => t.h),
      root,
    );
  }

  /** [worldSize, ...t.shape]: every rank's tensor in rank order (same shape on every rank). */
  allGather(t: Tensor): Tensor {
    return fromHandle(N.distAllGather(this.h(), t.h) as Handle);
  }

  barrier(): void {
    N.distBarrier(this.h());
  }

  /** Leave the group (joins the backend's threads); idempotent. */
  destroy(): void {
    if (this.handle) N.distDestroy(this.handle);
    this.handle = null;
  }
}

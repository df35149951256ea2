// The request queue in front of the single model: generation is not re-entrant (and runs synchronously on the event
// loop), so jobs run one batch at a time. BATCHING POLICY: the oldest waiting job always runs next; queued jobs with
// the same batching key (same task and identical generation settings) join it, oldest first, while the batch holds at
// most `maxBatch` texts. A job with more texts than `maxBatch` runs alone (the runner splits it into generation
// batches). A job whose key is null (e.g. sampling with a seed, whose result must not depend on its neighbours) never
// joins another. A short window (`windowMs`) after the queue becomes non-empty lets requests that arrive together meet.
// If a batch of several jobs fails, each job is retried alone, so one bad request cannot fail its neighbours.

export interface QueueJob {
  /** jobs with equal non-null keys may share one batch */
  key: string | null;
  /** texts in this job */
  size: number;
}

export type BatchRunner<J extends QueueJob, R> = (jobs: J[]) => Promise<R[]> | R[];

export interface BatchInfo {
  /** jobs run together */
  jobs: number;
  /** texts run together */
  texts: number;
}

interface Pending<J, R> {
  job: J;
  resolve: (v: { result: R; batch: BatchInfo }) => void;
  reject: (e: unknown) => void;
}

export class BatchQueue<J extends QueueJob, R> {
  private readonly pending: Array<Pending<J, R>> = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  /** batches run so far (for /health and tests) */
  batches = 0;

  constructor(
    private readonly run: BatchRunner<J, R>,
    private readonly opts: { maxBatch: number; windowMs: number },
  ) {
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1)
      throw new RangeError(`maxBatch must be a positive integer, got ${opts.maxBatch}`);
  }

  /** Queue a job; resolves with its result and the batch it ran in. */
  push(job: J): Promise<{ result: R; batch: BatchInfo }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ job, resolve, reject });
      this.schedule();
    });
  }

  /** Jobs waiting (not yet running). */
  get waiting(): number {
    return this.pending.length;
  }

  get busy(): boolean {
    return this.running;
  }

  /** Resolves once nothing is waiting or running. */
  idle(): Promise<void> {
    if (!this.running && this.pending.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private schedule(): void {
    if (this.running || this.timer || this.pending.length === 0) return;
    // a timer (not setImmediate) so sockets with complete requests get parsed and queued before the batch is formed
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.drain();
    }, this.opts.windowMs);
  }

  /** The oldest job plus compatible later ones (see the file header). */
  private takeBatch(): Array<Pending<J, R>> {
    const first = this.pending.shift()!;
    const out = [first];
    if (first.job.key === null) return out;
    let texts = first.job.size;
    for (let i = 0; i < this.pending.length && texts < this.opts.maxBatch;) {
      const p = this.pending[i]!;
      if (p.job.key === first.job.key && texts + p.job.size <= this.opts.maxBatch) {
        out.push(p);
        texts += p.job.size;
        this.pending.splice(i, 1);
      } else i++;
    }
    return out;
  }

  private async drain(): Promise<void> {
    if (this.running || this.pending.length === 0) return;
    this.running = true;
    const batch = this.takeBatch();
    try {
      await this.runSettled(batch);
    } finally {
      this.running = false;
      if (this.pending.length) this.schedule();
      else {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const r of w) r();
      }
    }
  }

  private async runSettled(batch: Array<Pending<J, R>>): Promise<void> {
    const info: BatchInfo = { jobs: batch.length, texts: batch.reduce((s, p) => s + p.job.size, 0) };
    this.batches++;
    try {
      const results = await this.run(batch.map((p) => p.job));
      if (results.length !== batch.length)
        throw new Error(`batch runner returned ${results.length} results for ${batch.length} jobs`);
      batch.forEach((p, i) => p.resolve({ result: results[i]!, batch: info }));
    } catch (e) {
      if (batch.length === 1) {
        batch[0]!.reject(e);
        return;
      }
      // retry alone: only the job(s) that really fail get the error
      for (const p of batch) await this.runSettled([p]);
    }
  }
}

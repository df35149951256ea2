// The training loop, model-agnostic: anything with forward(ids) -> logits and named trainable parameters. One update =
// up to gradient_accumulation_steps micro-batches (never crossing an epoch end), each backpropagating its summed
// token loss / the tokens of the whole update; then global-norm clipping, an optimizer step at the schedule's rate,
// logging, evaluation, checkpointing. Resume restores parameters, optimizer, data position and step exactly.
// When to log / evaluate / save follows training.*_strategy (HF semantics; null keeps medlora's step rules), the best
// evaluation by metric_for_best_model is tracked (and can end the run: early stopping; and be the final adapter:
// load_best_model_at_end), and every logged record also goes to TensorBoard when report_to has tensorboard.
// Over ~400 lines on purpose: one training loop; accumulation, clipping, logging, evaluation, checkpointing and exact
// resume share the loop's state, and splitting them would pass that state around.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clipGradNorm, manualSeed, noGrad, reuseLargeBlocks, scope, tensor, type Tensor } from '../tensor/index.js';
import { MedloraError, fieldError } from '../util/errors.js';
import type { TrainingSection } from './config.js';
import { BatchSource, makeBatch, padBatch, type Example, type MicroBatch } from './data.js';
import { summedTokenLoss } from './loss.js';
import { createOptimizer, type TrainOptimizer } from './optim.js';
import { learningRateAt, warmupSteps, type ScheduleSpec } from './schedule.js';
import {
  findCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  pruneCheckpoints,
  saveCheckpoint,
  TRAINER_STATE,
  type TrainerState,
} from './checkpoint.js';
import {
  MetricsLog,
  type EvalRecord,
  type GenerateEvalRecord,
  type GenerateEvalScores,
  type MetricRecord,
  type TrainRecord,
} from './metrics.js';
import { bestMetricName } from './config.js';
import { activateNeftune } from './neftune.js';
import { defaultLogDir, TfEventsWriter, tensorboardScalars } from './tfevents.js';

/** What the trainer needs from a model. */
export interface TrainableModel {
  /** logits [N, vocab] at `outputPositions` (flat indices into the [B*T] positions; see src/model/causal-lm.ts) */
  forward(inputIds: Tensor, opts: { attentionMask?: Tensor; outputPositions: Tensor }): Tensor;
  train(on?: boolean): unknown;
  trainableParameters(): Array<[string, Tensor]>;
  gradientCheckpointing?: boolean;
}

/**
 * Data parallelism (src/train/distributed.ts implements it over c10d); absent = one process. The BatchSource then
 * draws global micro-batches of per_device_train_batch_size * worldSize rows and each rank trains on its shard; the
 * loss is divided by the tokens of the whole update over all ranks, so the summed gradients are the global mean's.
 * Rank 0 alone logs, evaluates and writes checkpoints and the adapter; every rank resumes from them.
 */
export interface TrainerParallel {
  readonly rank: number;
  readonly worldSize: number;
  /** the rank's index on its node (torchrun's LOCAL_RANK): training.device auto / cuda take this GPU */
  readonly localRank?: number;
  /** the collectives' backend: nccl reduces CUDA tensors only, gloo the CPU's here */
  readonly backend?: 'gloo' | 'nccl';
  /** this rank's rows of a global micro-batch (deterministic: depends only on the rows and the rank) */
  shard<T>(rows: readonly T[]): T[];
  /** element-wise sum over ranks */
  allSum(values: readonly number[]): number[];
  /** after backward: gradients summed over ranks (absent on a rank = zero; absent everywhere stays absent) */
  syncGrads(params: readonly Tensor[]): void;
  /** every rank's parameters become rank 0's (at the start, as DDP does) */
  syncParams(params: readonly Tensor[]): void;
}

export interface TrainerOptions {
  model: TrainableModel;
  training: TrainingSection;
  runDir: string;
  train: readonly Example[];
  validation?: readonly Example[];
  padId: number;
  /** writes the adapter (PEFT format) into a folder; called for checkpoints and the final adapter */
  saveAdapter?: (dir: string) => void;
  /** a checkpoint folder or "latest" */
  resume?: string;
  /** stop (without a checkpoint) once this many updates are done in total: for tests that simulate a kill */
  haltAfterStep?: number;
  onLog?: (r: MetricRecord) => void;
  /**
   * Generation-based evaluation run every training.eval_generate_steps updates (and after the last one): returns
   * gen_f1, gen_precision, ... (see GenerateEvalRecord). Supplied by the caller (src/eval), so train stays below eval.
   */
  generateEval?: () => GenerateEvalScores;
  onStep?: (done: number, total: number, r: TrainRecord) => void;
  onMessage?: (line: string) => void;
  parallel?: TrainerParallel;
  /** the resolved config, written as TensorBoard text (report_to: tensorboard); default: the training section */
  reportConfig?: unknown;
  /** where the device of the trainable parameters is decided (fp16 is refused on the CPU) */
  device?: string;
}

/** The best evaluation so far (HF TrainerState best_metric / best_global_step / best_model_checkpoint). */
export interface BestState {
  best_metric: number | null;
  best_global_step: number | null;
  best_model_checkpoint: string | null;
  /** HF EarlyStoppingCallback's counter: evaluations since the metric last improved by more than the threshold */
  early_stopping_patience_counter: number;
}

/** The checkpoint to resume from: the --resume flag, else training.resume_from_checkpoint (true = "latest"). */
export function resumeTarget(t: TrainingSection, flag?: string): string | undefined {
  if (flag !== undefined) return flag;
  const r = t.resume_from_checkpoint;
  return r === true ? 'latest' : typeof r === 'string' ? r : undefined;
}

export interface TrainResult {
  steps: number;
  totalSteps: number;
  interrupted: boolean;
  halted: boolean;
  lastCheckpoint: string | null;
  /** early stopping ended the run before its last update */
  earlyStopped: boolean;
  best: BestState;
  /** the checkpoint whose weights the final adapter holds (load_best_model_at_end), else null */
  finalFrom: string | null;
  optimizerBytes: { actual: number; fp32: number };
  trainableParams: number;
  wallSeconds: number;
  tokensPerSecond: number;
}

/** Total updates: max_steps, or ceil(epochs * ceil(batchesPerEpoch / accumulation)) as HF's Trainer computes it. */
export function totalUpdates(t: TrainingSection, batchesPerEpoch: number): number {
  if (t.max_steps > 0) return t.max_steps;
  const perEpoch = Math.max(1, Math.ceil(batchesPerEpoch / t.gradient_accumulation_steps));
  return Math.ceil(t.num_train_epochs * perEpoch);
}

/** The engine seed for update `step`: dropout masks depend only on (seed, step), so a resumed run draws the same. */
export function stepSeed(seed: number, step: number): number {
  return (seed * 1000003 + step * 10007 + 17) % 2147483647;
}

export class Trainer {
  readonly params: Array<[string, Tensor]>;
  readonly optimizer: TrainOptimizer;
  readonly source: BatchSource;
  readonly schedule: ScheduleSpec;
  readonly metrics: MetricsLog;
  step = 0;
  totalTokens = 0;
  best: BestState = {
    best_metric: null,
    best_global_step: null,
    best_model_checkpoint: null,
    early_stopping_patience_counter: 0,
  };
  private stopRequested = false;
  /** data parallel: whether any rank had been asked to stop at the last update (all ranks agree on it) */
  private stopAgreed = false;
  private tb: TfEventsWriter | undefined;
  private removeNeftune: (() => void) | undefined;

  constructor(private readonly o: TrainerOptions) {
    const t = o.training;
    this.params = o.model.trainableParameters();
    if (this.params.length === 0) throw new MedloraError('the model has no trainable parameters (apply LoRA first)');
    this.optimizer = createOptimizer(this.params, {
      name: t.optim,
      betas: [t.adam_beta1, t.adam_beta2],
      eps: t.adam_epsilon,
      weightDecay: t.weight_decay,
    });
    this.source = new BatchSource(
      o.train,
      t.per_device_train_batch_size * (o.parallel?.worldSize ?? 1),
      t.shuffle,
      t.seed,
      o.padId,
      t.padding_free,
    );
    const total = totalUpdates(t, this.source.batchesPerEpoch);
    this.schedule = {
      type: t.lr_scheduler_type,
      learningRate: t.learning_rate,
      warmupSteps: warmupSteps(t.warmup_steps, t.warmup_ratio, total),
      totalSteps: total,
      ...(Object.keys(t.lr_scheduler_kwargs ?? {}).length ? { kwargs: t.lr_scheduler_kwargs } : {}),
    };
    mkdirSync(o.runDir, { recursive: true });
    this.metrics = new MetricsLog(join(o.runDir, 'metrics.jsonl'));
    o.model.gradientCheckpointing = t.gradient_checkpointing;
    if (t.optim === 'paged_adamw_8bit')
      this.say(
        'optim paged_adamw_8bit: paging (CUDA unified memory) has no meaning here; using block-wise 8-bit AdamW state',
      );
    this.checkRunKeys();
  }

  /** Refusals that need the model or the caller (the config checked the rest). */
  private checkRunKeys(): void {
    const t = this.o.training;
    if (t.fp16) {
      const device = this.o.device ?? this.params[0]![1].device;
      // float16 without loss scaling underflows gradients silently; medlora's loss scaler is not written yet
      if (device === 'cpu')
        throw new MedloraError(
          'training.fp16: float16 mixed precision (with loss scaling) is for CUDA; this run is on the CPU — use training.bf16 or leave fp16 false',
        );
      throw new MedloraError(
        `training.fp16: float16 training with dynamic loss scaling is not implemented in medlora yet (device ${device}); use training.bf16`,
      );
    }
    const metric = t.metric_for_best_model === null ? null : bestMetricName(t.metric_for_best_model);
    if (metric?.startsWith('gen_') && !this.o.generateEval) {
      throw new MedloraError(
        `training.metric_for_best_model ${t.metric_for_best_model} needs generation-based evaluation (training.eval_generate_steps and data.validation records)`,
      );
    }
    if (
      metric?.startsWith('eval_') &&
      !this.o.validation?.length &&
      (t.load_best_model_at_end || t.early_stopping_patience !== null)
    ) {
      throw new MedloraError(`training.metric_for_best_model ${t.metric_for_best_model} needs data.validation`);
    }
  }

  /** Ask the loop to stop after the current update (it saves a checkpoint first). Safe from a signal handler. */
  requestStop(): void {
    this.stopRequested = true;
  }

  private say(line: string): void {
    if (this.isMain) this.o.onMessage?.(line);
  }

  /** rank 0 of a data-parallel job, or the only process: the one that logs and writes */
  get isMain(): boolean {
    return (this.o.parallel?.rank ?? 0) === 0;
  }

  private invariants(): Record<string, unknown> {
    const t = this.o.training;
    return {
      per_device_train_batch_size: t.per_device_train_batch_size,
      gradient_accumulation_steps: t.gradient_accumulation_steps,
      shuffle: t.shuffle,
      seed: t.seed,
      optim: t.optim,
      train_examples: this.o.train.length,
      ...(this.o.parallel ? { world_size: this.o.parallel.worldSize } : {}),
    };
  }

  private state(): TrainerState {
    const t = this.o.training;
    const s: TrainerState & BestState = {
      global_step: this.step,
      epoch: this.source.epochFloat(),
      data_position: { ...this.source.pos },
      shuffle: { enabled: t.shuffle, seed: t.seed },
      rng: { scheme: 'reseed-per-step', seed: t.seed },
      schedule: this.schedule,
      optimizer: t.optim,
      invariants: this.invariants(),
      total_tokens: this.totalTokens,
      ...this.best,
    };
    return s;
  }

  /** Restore everything from a checkpoint; metrics after its step are dropped (they will be logged again). */
  resumeFrom(which: string): string {
    const dir = findCheckpoint(this.o.runDir, which);
    const ck = loadCheckpoint(dir);
    try {
      const inv = this.invariants();
      for (const [k, v] of Object.entries(ck.state.invariants ?? {})) {
        if (JSON.stringify(inv[k]) !== JSON.stringify(v)) {
          throw fieldError(
            'resume',
            `resume ${dir}: ${k} was ${JSON.stringify(v)} in that run and is ${JSON.stringify(inv[k])} now; continuing exactly needs the same value`,
          );
        }
      }
      noGrad(() => {
        for (const [n, p] of this.params) {
          const src = ck.trainable[n];
          if (!src) throw new MedloraError(`${dir}: no saved tensor for trainable parameter ${n}`);
          if (JSON.stringify(src.shape) !== JSON.stringify(p.shape))
            throw new MedloraError(
              `${dir}: ${n} has shape [${src.shape.join(',')}], the model's is [${p.shape.join(',')}]`,
            );
          p.copy_(src);
        }
        const extra = Object.keys(ck.trainable).filter((n) => !this.params.some(([m]) => m === n));
        if (extra.length)
          throw new MedloraError(
            `${dir}: saved tensors ${extra.slice(0, 3).join(', ')} are not trainable parameters of this model`,
          );
      });
      this.optimizer.loadState(ck.optimizer);
    } finally {
      for (const t of Object.values(ck.trainable)) t.dispose();
      for (const t of Object.values(ck.optimizer.tensors)) t.dispose();
    }
    this.step = ck.state.global_step;
    this.totalTokens = ck.state.total_tokens ?? 0;
    const b = ck.state as TrainerState & Partial<BestState>;
    this.best = {
      best_metric: b.best_metric ?? null,
      best_global_step: b.best_global_step ?? null,
      best_model_checkpoint: b.best_model_checkpoint ?? null,
      early_stopping_patience_counter: b.early_stopping_patience_counter ?? 0,
    };
    this.source.pos = { ...ck.state.data_position };
    if (this.isMain) this.metrics.truncateAfter(this.step);
    this.say(`resumed from ${dir} at step ${this.step}`);
    return dir;
  }

  private checkpoint(): string {
    if (!this.isMain) return join(this.o.runDir, `checkpoint-${this.step}`);
    const opt = this.optimizer.saveState();
    try {
      if (this.best.best_global_step === this.step)
        this.best.best_model_checkpoint = join(this.o.runDir, `checkpoint-${this.step}`);
      const dir = saveCheckpoint(this.o.runDir, {
        step: this.step,
        trainable: this.params,
        optimizer: opt,
        state: this.state(),
        saveAdapter: this.o.saveAdapter,
      });
      for (const d of this.prune()) this.say(`removed old checkpoint ${d}`);
      return dir;
    } finally {
      for (const t of Object.values(opt.tensors)) t.dispose();
    }
  }

  /** save_total_limit; the best checkpoint is always kept (HF: with load_best_model_at_end, plus the newest). */
  private prune(): string[] {
    const limit = this.o.training.save_total_limit;
    const best = this.best.best_model_checkpoint;
    if (limit === null || best === null || !this.o.training.load_best_model_at_end)
      return pruneCheckpoints(this.o.runDir, limit);
    const all = listCheckpoints(this.o.runDir).map((c) => c.dir);
    const others = all.filter((d) => d !== best);
    const keepOthers = Math.max(all.includes(best) ? limit - 1 : limit, 1);
    const gone = others.slice(0, Math.max(0, others.length - keepOthers));
    for (const d of gone) rmSync(d, { recursive: true, force: true });
    return gone;
  }

  /** Summed token loss of a micro-batch; logits are computed only at its scored positions. undefined when none is scored. */
  private batchLoss(b: MicroBatch): Tensor | undefined {
    const { positions, targets } = b.scored;
    if (!positions.length) return undefined;
    const ids = tensor(b.input_ids, { dtype: 'i64' });
    const outputPositions = tensor(positions, { dtype: 'i64' });
    const packed =
      b.segment_ids && b.position_ids
        ? {
            segmentIds: tensor(b.segment_ids, { dtype: 'i64' }),
            positionIds: tensor(b.position_ids, { dtype: 'i64' }),
            ...(b.segment_lengths ? { segmentLengths: b.segment_lengths } : {}),
          }
        : {};
    const logits = this.o.model.forward(ids, {
      outputPositions,
      ...packed,
      ...(b.padded ? { attentionMask: tensor(b.attention_mask, { dtype: 'i64' }) } : {}),
    });
    return summedTokenLoss(logits, tensor(targets, { dtype: 'i64' }));
  }

  /** One update: returns the token-weighted mean loss, the pre-clip gradient norm, and the tokens trained. */
  trainStep(): { loss: number; gradNorm: number; tokens: number; lr: number } {
    const t = this.o.training;
    const lr = learningRateAt(this.schedule, this.step);
    manualSeed(stepSeed(t.seed, this.step));
    const left = this.source.remainingInEpoch();
    const k = left === 0 ? t.gradient_accumulation_steps : Math.min(t.gradient_accumulation_steps, left);
    const batches: MicroBatch[] = [];
    const par = this.o.parallel;
    for (let i = 0; i < k; i++)
      batches.push(
        par ? makeBatch(par.shard(this.source.nextRows()), this.o.padId, t.padding_free) : this.source.next(),
      );
    const localTokens = batches.reduce((a, b) => a + b.targets, 0);
    const tokens = par ? par.allSum([localTokens])[0]! : localTokens;
    let sum = 0;
    this.o.model.train(true);
    for (const b of batches) {
      scope(() => {
        // a micro-batch with every label masked contributes nothing (no forward at all)
        const s = this.batchLoss(b);
        if (!s) return;
        sum += s.item();
        s.div(tokens).backward();
      });
    }
    const ps = this.params.map(([, p]) => p);
    if (par) {
      // every rank learns whether any rank was asked to stop, so they all stop after the same update
      const [s, stop] = par.allSum([sum, this.stopRequested ? 1 : 0]);
      sum = s!;
      this.stopAgreed = stop! > 0;
      par.syncGrads(ps);
    }
    const gradNorm = clipGradNorm(ps, t.max_grad_norm > 0 ? t.max_grad_norm : Infinity);
    this.optimizer.step(lr);
    this.optimizer.zeroGrad();
    this.step++;
    return { loss: sum / Math.max(1, tokens), gradNorm, tokens, lr };
  }

  /** Token-weighted mean loss over examples (no grad, dropout off). */
  evaluate(examples: readonly Example[]): { loss: number; tokens: number } {
    const bs = this.o.training.per_device_eval_batch_size;
    let sum = 0,
      tokens = 0;
    this.o.model.train(false);
    noGrad(() => {
      for (let i = 0; i < examples.length; i += bs) {
        const b = padBatch(examples.slice(i, i + bs), this.o.padId);
        scope(() => {
          sum += this.batchLoss(b)?.item() ?? 0;
        });
        tokens += b.targets;
      }
    });
    this.o.model.train(true);
    return { loss: sum / Math.max(1, tokens), tokens };
  }

  /** metrics.jsonl, TensorBoard (report_to), the caller. */
  private log(r: MetricRecord): void {
    if (!this.isMain) return;
    this.metrics.append(r);
    this.tb?.addScalars(tensorboardScalars(r), r.step);
    this.o.onLog?.(r);
  }

  private runEval(): EvalRecord | undefined {
    if (!this.o.validation?.length || !this.isMain) return undefined;
    const e = this.evaluate(this.o.validation);
    const r: EvalRecord = {
      step: this.step,
      epoch: this.source.epochFloat(),
      eval_loss: e.loss,
      eval_perplexity: Math.exp(e.loss),
      eval_tokens: e.tokens,
    };
    this.log(r);
    this.trackBest(r);
    return r;
  }

  private runGenerateEval(): GenerateEvalRecord | undefined {
    if (!this.o.generateEval || !this.isMain) return undefined;
    const r: GenerateEvalRecord = { step: this.step, epoch: this.source.epochFloat(), ...this.o.generateEval() };
    this.o.model.train(true);
    this.log(r);
    this.trackBest(r);
    return r;
  }

  /**
   * One evaluation under an eval_strategy: the loss on data.validation and (when the caller supplies it) the
   * generation scores, like HF's evaluate() + compute_metrics. Returns true when early stopping says stop.
   */
  private evaluation(): { stop: boolean; newBest: boolean } {
    const before = this.best.best_global_step;
    this.pendingStop = false;
    this.runEval();
    this.runGenerateEval();
    return { stop: this.pendingStop, newBest: this.best.best_global_step === this.step && before !== this.step };
  }

  private pendingStop = false;

  /**
   * HF's order for a record holding metric_for_best_model: EarlyStoppingCallback.on_evaluate (compares with the best
   * so far: improvement = better and |value - best| > threshold, else the counter grows; stop when it reaches the
   * patience), then Trainer._determine_best_metric (strictly better = the new best).
   */
  private trackBest(r: MetricRecord): void {
    const t = this.o.training;
    if (t.metric_for_best_model === null) return;
    const v = (r as unknown as Record<string, number>)[bestMetricName(t.metric_for_best_model)];
    if (typeof v !== 'number' || Number.isNaN(v)) return;
    const better = (a: number, b: number): boolean => (t.greater_is_better ? a > b : a < b);
    const b = this.best;
    if (t.early_stopping_patience !== null) {
      if (
        b.best_metric === null ||
        (better(v, b.best_metric) && Math.abs(v - b.best_metric) > t.early_stopping_threshold)
      )
        b.early_stopping_patience_counter = 0;
      else b.early_stopping_patience_counter++;
      if (b.early_stopping_patience_counter >= t.early_stopping_patience) this.pendingStop = true;
    }
    if (b.best_metric === null || better(v, b.best_metric)) {
      b.best_metric = v;
      b.best_global_step = this.step;
    }
  }

  /** Copy a checkpoint's trainable tensors into the model (load_best_model_at_end). */
  private loadWeights(dir: string): void {
    const ck = loadCheckpoint(dir);
    try {
      noGrad(() => {
        for (const [n, p] of this.params) {
          const src = ck.trainable[n];
          if (!src) throw new MedloraError(`${dir}: no saved tensor for trainable parameter ${n}`);
          p.copy_(src);
        }
      });
    } finally {
      for (const x of Object.values(ck.trainable)) x.dispose();
      for (const x of Object.values(ck.optimizer.tensors)) x.dispose();
    }
  }

  async train(): Promise<TrainResult> {
    const t = this.o.training;
    const resume = resumeTarget(t, this.o.resume);
    if (resume) this.resumeFrom(resume);
    this.o.parallel?.syncParams(this.params.map(([, p]) => p));
    if (t.report_to.includes('tensorboard') && this.isMain) {
      this.tb = new TfEventsWriter(defaultLogDir(this.o.runDir));
      this.tb.addText('config', JSON.stringify(this.o.reportConfig ?? { training: t }, null, 2), this.step);
    }
    if (t.neftune_noise_alpha !== null)
      this.removeNeftune = activateNeftune(
        this.o.model as unknown as Parameters<typeof activateNeftune>[0],
        t.neftune_noise_alpha,
      );
    // every step allocates and frees the same blocks; keep those above glibc's 32 MiB mmap ceiling (a large vocabulary's
    // lm_head logits) in the heap too, so they are not page-faulted in again each micro-batch (src/tensor/native.ts)
    const releaseBlocks = reuseLargeBlocks();
    try {
      return await this.loop();
    } finally {
      releaseBlocks();
      this.removeNeftune?.();
      this.removeNeftune = undefined;
    }
  }

  private async loop(): Promise<TrainResult> {
    const t = this.o.training;
    const total = this.schedule.totalSteps;
    const start = Date.now();
    const startTokens = this.totalTokens;
    let lastCheckpoint: string | null = null;
    let interrupted = false,
      halted = false,
      earlyStopped = false;
    let windowStart = Date.now(),
      windowTokens = 0;
    let savedAt = -1;
    const save = (): void => {
      lastCheckpoint = this.checkpoint();
      savedAt = this.step;
    };
    while (this.step < total) {
      const s = this.trainStep();
      this.totalTokens += s.tokens;
      windowTokens += s.tokens;
      const now = Date.now();
      const rec: TrainRecord = {
        step: this.step,
        epoch: this.source.epochFloat(),
        loss: s.loss,
        learning_rate: s.lr,
        grad_norm: s.gradNorm,
        tokens_per_second: windowTokens / Math.max(1e-3, (now - windowStart) / 1000),
        tokens: s.tokens,
      };
      const last = this.step === total;
      // an epoch ends when its micro-batches are used up; HF also runs its epoch-end hooks when max_steps ends one early
      const epochEnd = this.source.remainingInEpoch() === 0 || last;
      // logging_strategy (null: medlora logs every logging_steps and also the first and the last update)
      const logNow =
        t.logging_strategy === null
          ? this.step % t.logging_steps === 0 || last || this.step === 1
          : t.logging_strategy === 'steps'
            ? this.step % t.logging_steps === 0
            : t.logging_strategy === 'epoch'
              ? epochEnd
              : false;
      if (logNow) {
        this.log(rec);
        windowStart = now;
        windowTokens = 0;
      }
      this.o.onStep?.(this.step, total, rec);
      let newBest = false;
      if (t.eval_strategy === null) {
        if (t.eval_steps !== null && this.step % t.eval_steps === 0) this.runEval();
        if (t.eval_generate_steps !== null && this.step % t.eval_generate_steps === 0) this.runGenerateEval();
      } else if (
        t.eval_strategy === 'steps'
          ? this.step % t.eval_steps! === 0 || last
          : t.eval_strategy === 'epoch'
            ? epochEnd
            : false
      ) {
        // HF DefaultFlowCallback: steps-evaluation also runs at the last update
        const e = this.evaluation();
        newBest = e.newBest;
        if (e.stop) earlyStopped = true;
        // rank 0 evaluates; every rank stops with it
        if (this.o.parallel) earlyStopped = this.o.parallel.allSum([earlyStopped ? 1 : 0])[0]! > 0;
      }
      // save_strategy (null: every save_steps); HF's steps strategy also saves at the last update, best saves on a new best
      const saveNow =
        t.save_strategy === null
          ? t.save_steps !== null && this.step % t.save_steps === 0
          : t.save_strategy === 'steps'
            ? this.step % t.save_steps! === 0 || last
            : t.save_strategy === 'epoch'
              ? epochEnd
              : t.save_strategy === 'best'
                ? newBest
                : false;
      if (saveNow) save();
      if (earlyStopped && !last) {
        this.say(
          `early stopping at step ${this.step}: ${t.metric_for_best_model} did not improve by more than ${t.early_stopping_threshold} for ${t.early_stopping_patience} evaluations (best ${this.best.best_metric} at step ${this.best.best_global_step})`,
        );
        break;
      }
      earlyStopped = false;
      if (this.o.haltAfterStep !== undefined && this.step >= this.o.haltAfterStep && this.step < total) {
        halted = true;
        break;
      }
      // let a pending SIGINT handler run between updates
      await new Promise<void>((r) => setImmediate(r));
      if ((this.o.parallel ? this.stopAgreed : this.stopRequested) && this.step < total) {
        if (savedAt !== this.step) save();
        interrupted = true;
        break;
      }
    }
    let finalFrom: string | null = null;
    if (!interrupted && !halted) {
      if (t.eval_strategy === null) {
        // medlora's rule without an eval_strategy: the final weights are always evaluated
        if (t.eval_steps === null || this.step % t.eval_steps !== 0) this.runEval();
        if (t.eval_generate_steps !== null && this.step % t.eval_generate_steps !== 0) this.runGenerateEval();
      }
      if (
        t.load_best_model_at_end &&
        this.best.best_model_checkpoint !== null &&
        this.best.best_global_step !== this.step
      ) {
        this.loadWeights(this.best.best_model_checkpoint);
        finalFrom = this.best.best_model_checkpoint;
        this.say(
          `load_best_model_at_end: the final adapter is ${finalFrom} (${t.metric_for_best_model} ${this.best.best_metric})`,
        );
      } else if (t.load_best_model_at_end && this.best.best_model_checkpoint !== null) {
        finalFrom = this.best.best_model_checkpoint;
      }
      if (this.o.saveAdapter && this.isMain) this.o.saveAdapter(join(this.o.runDir, 'adapter'));
      // the run's own trainer_state.json (HF writes one in output_dir at the end): the best checkpoint and metric
      if (this.isMain)
        writeFileSync(
          join(this.o.runDir, TRAINER_STATE),
          `${JSON.stringify(
            {
              global_step: this.step,
              max_steps: total,
              epoch: this.source.epochFloat(),
              metric_for_best_model: t.metric_for_best_model,
              greater_is_better: t.greater_is_better,
              ...this.best,
              early_stopped: this.step < total,
              final_adapter_from: finalFrom,
            },
            null,
            2,
          )}\n`,
        );
    }
    const wall = (Date.now() - start) / 1000;
    return {
      steps: this.step,
      totalSteps: total,
      interrupted,
      halted,
      lastCheckpoint,
      earlyStopped: !interrupted && !halted && this.step < total,
      best: { ...this.best },
      finalFrom,
      optimizerBytes: this.optimizer.stateBytes(),
      trainableParams: this.params.reduce((a, [, p]) => a + p.numel, 0),
      wallSeconds: wall,
      tokensPerSecond: (this.totalTokens - startTokens) / Math.max(1e-3, wall),
    };
  }
}

// One training run end to end, as the CLI drives it: run directory checks, config.resolved.json, model + data setup,
// the Trainer with a progress bar (or JSON lines), Ctrl-C handling, and report.html at the end.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { trainableParameterSummary } from '../adapt/apply.js';
import { Progress } from '../util/progress.js';
import { cudaIndex, resolveDevice } from '../tensor/device.js';
import { cudaMemoryStats } from '../tensor/engine.js';
import type { Device } from '../tensor/dtype.js';
import { computeDtype, type TrainConfig } from './config.js';
import { listCheckpoints } from './checkpoint.js';
import { isEval, isGenerateEval, MetricsLog } from './metrics.js';
import { writeReport } from './report.js';
import { prepareRun, type PreparedRun } from './setup.js';
import { resumeTarget, Trainer, type TrainerOptions, type TrainerParallel, type TrainResult } from './trainer.js';

export interface RunOptions {
  /** the CPU's bf16 matrix units (default: from /proc/cpuinfo); tests inject them */
  bf16Units?: readonly string[];
  resume?: string;
  json?: boolean;
  quiet?: boolean;
  /** tests: stop after this many updates without a checkpoint (a simulated kill) */
  haltAfterStep?: number;
  /**
   * Builds the training.eval_generate_steps evaluator for the prepared model (src/eval supplies it: train must not
   * depend on eval/generate). Required when eval_generate_steps is set.
   */
  generateEval?: (
    model: PreparedRun['model'],
    cfg: TrainConfig,
  ) => Promise<NonNullable<TrainerOptions['generateEval']>>;
  /** data parallelism (src/train/distributed.ts): ranks other than 0 print nothing and write nothing */
  parallel?: TrainerParallel;
}

function emitLine(json: boolean | undefined, event: string, fields: Record<string, unknown>, text?: string): void {
  if (json) process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
  else if (text !== undefined) process.stderr.write(`${text}\n`);
}

/** The ranks' collectives must reach the gradients where they are: NCCL on CUDA tensors, Gloo (here) on CPU ones. */
export function checkBackendDevice(backend: 'gloo' | 'nccl' | undefined, device: Device): void {
  if (backend === undefined) return;
  const cuda = device !== 'cpu';
  if (backend === 'nccl' && !cuda)
    throw new MedloraError(
      'training.device cpu with the nccl backend: NCCL reduces CUDA tensors only; train on cuda or use the gloo backend',
      { field: 'device' },
    );
  if (backend === 'gloo' && cuda)
    throw new MedloraError(
      `training.device ${device} with the gloo backend: medlora reduces CUDA gradients with NCCL; use the nccl backend (the CLI picks it for CUDA ranks unless told otherwise)`,
      { field: 'device' },
    );
}

export async function runTraining(cfg: TrainConfig, o: RunOptions = {}): Promise<TrainResult> {
  const dir = cfg.output_dir;
  const main = (o.parallel?.rank ?? 0) === 0;
  if (!main) o = { ...o, quiet: true, json: false };
  const emit = (json: boolean | undefined, event: string, fields: Record<string, unknown>, text?: string): void => {
    if (main) emitLine(json, event, fields, text);
  };
  // --resume, else training.resume_from_checkpoint (true = the newest checkpoint)
  const resume = resumeTarget(cfg.training, o.resume);
  if (!resume && existsSync(dir) && (listCheckpoints(dir).length > 0 || existsSync(join(dir, 'metrics.jsonl')))) {
    throw new MedloraError(
      `output_dir ${dir} already holds a run (metrics.jsonl / checkpoints); continue it with resume ${dir} (or resume latest with this config), or choose another output_dir`,
      { field: 'output_dir', related: ['resume'] },
    );
  }
  if (cfg.training.eval_generate_steps !== null) {
    if (!cfg.data.validation)
      throw new MedloraError(
        'training.eval_generate_steps needs data.validation (canonical records to generate answers for)',
      );
    if (!o.generateEval)
      throw new MedloraError('training.eval_generate_steps: this caller supplies no generation evaluator');
  }
  // the device word stays as written (auto moves with the run to another machine and gives each rank its own GPU); the
  // device it resolved to is in the start event, the run's result and the model card
  const device = resolveDevice(cfg.training.device, {
    what: 'training.device',
    field: 'device',
    localRank: o.parallel?.localRank ?? 0,
  });
  checkBackendDevice(o.parallel?.backend, device.device);
  mkdirSync(dir, { recursive: true });
  // the compute dtype is decided once (config.ts computeDtype) and recorded in the resolved config, so a resume keeps it
  cfg = {
    ...cfg,
    training: { ...cfg.training, compute_dtype: computeDtype(cfg.training, o.bf16Units, device.device).recorded },
  };
  if (main) writeFileSync(join(dir, 'config.resolved.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  if (device.note) emit(o.json, 'note', { message: device.note }, `note: ${device.note}`);
  const prep = await prepareRun(cfg, o.bf16Units, device.device);
  for (const n of prep.notes) emit(o.json, 'note', { message: n }, `note: ${n}`);
  for (const r of prep.reports) {
    emit(
      o.json,
      'data',
      {
        file: r.file,
        format: r.format,
        examples: r.examples,
        dropped: r.dropped,
        truncated: r.truncated,
        loss_tokens: r.trainTokens,
      },
      `data ${r.file}: ${r.examples} examples (${r.format}), ${r.trainTokens} loss tokens${r.dropped ? `, ${r.dropped} dropped (over data.max_length)` : ''}${r.truncated ? `, ${r.truncated} inputs shortened` : ''}`,
    );
  }
  const generateEval = cfg.training.eval_generate_steps !== null ? await o.generateEval!(prep.model, cfg) : undefined;
  let progress: Progress | undefined;
  const trainer = new Trainer({
    generateEval,
    model: prep.model,
    training: cfg.training,
    runDir: dir,
    train: prep.train,
    validation: prep.validation,
    padId: prep.padId,
    saveAdapter: prep.saveAdapter,
    resume,
    haltAfterStep: o.haltAfterStep,
    reportConfig: cfg,
    parallel: o.parallel,
    onMessage: (m) => emit(o.json, 'note', { message: m }, `note: ${m}`),
    onLog: (r) => {
      if (!main) return;
      if (o.json) emit(true, 'metrics', { ...r });
      else if (isEval(r) && !o.quiet)
        process.stderr.write(
          `\nstep ${r.step}: eval_loss ${r.eval_loss.toFixed(4)} (perplexity ${r.eval_perplexity.toFixed(2)})\n`,
        );
      else if (isGenerateEval(r) && !o.quiet)
        process.stderr.write(
          `\nstep ${r.step}: generation F1 ${r.gen_f1.toFixed(4)} (P ${r.gen_precision.toFixed(3)}, R ${r.gen_recall.toFixed(3)}, parse rate ${r.gen_parse_rate.toFixed(3)}, ${r.gen_samples} validation records)\n`,
        );
    },
    onStep: (done, total, r) => {
      progress ??= new Progress({ total, label: 'train', json: false, quiet: o.quiet || o.json });
      progress.update(done, { loss: r.loss, 'tok/s': Math.round(r.tokens_per_second), lr: r.learning_rate });
    },
  });
  // one count for the whole project (src/adapt/apply.ts): NF4 weights at their logical size, as PEFT counts them
  const { trainable, total, line: paramsLine } = trainableParameterSummary(prep.model);
  const ob = trainer.optimizer.stateBytes();
  emit(
    o.json,
    'start',
    {
      trainable_params: trainable,
      total_params: total,
      finetuning: prep.method,
      lora_modules: prep.loraModules.length,
      total_steps: trainer.schedule.totalSteps,
      warmup_steps: trainer.schedule.warmupSteps,
      optimizer: cfg.training.optim,
      optimizer_state_bytes: ob.actual,
      optimizer_state_bytes_fp32: ob.fp32,
      compute_dtype: cfg.training.compute_dtype,
      device: device.device,
      model_dtype: prep.model.parameters()[0]?.dtype ?? null,
    },
    `${paramsLine}\n` +
      `${trainer.schedule.totalSteps} updates (warmup ${trainer.schedule.warmupSteps}), ${cfg.training.optim}, on ${device.device}`,
  );
  const onSigint = (): void => {
    if (!main) {
      trainer.requestStop();
      process.off('SIGINT', onSigint);
      return;
    }
    emit(
      o.json,
      'note',
      { message: 'SIGINT: finishing the current update, then saving a checkpoint' },
      '\nCtrl-C: finishing the current update, then saving a checkpoint (Ctrl-C again to abort without saving)',
    );
    trainer.requestStop();
    process.off('SIGINT', onSigint);
  };
  process.on('SIGINT', onSigint);
  let res: TrainResult;
  try {
    res = await trainer.train();
  } finally {
    process.off('SIGINT', onSigint);
    progress?.end();
  }
  const optimizerNote =
    cfg.training.optim === 'adamw_torch'
      ? `${res.optimizerBytes.actual} B`
      : `${res.optimizerBytes.actual} B (8-bit; f32 would be ${res.optimizerBytes.fp32} B, saving ${(100 * (1 - res.optimizerBytes.actual / res.optimizerBytes.fp32)).toFixed(1)}%)`;
  if (main)
    writeReport(join(dir, 'report.html'), new MetricsLog(join(dir, 'metrics.jsonl')).read(), {
      title: `medlora train: ${dir}`,
      facts: [
        ['model', cfg.model],
        ['steps', `${res.steps} / ${res.totalSteps}${res.interrupted ? ' (interrupted)' : ''}`],
        [
          'trainable parameters',
          `${trainable.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} (${((100 * trainable) / total).toFixed(3)}%)`,
        ],
        ['fine-tuning', `${prep.method}: ${prep.loraModules.length} adapted modules`],
        ['compute dtype', `${cfg.training.compute_dtype}${cfg.training.bf16 ? ' (bf16 asked)' : ''}`],
        ['optimizer', `${cfg.training.optim}, state ${optimizerNote}`],
        ['tokens/s (this session)', res.tokensPerSecond.toFixed(1)],
        ['wall time (this session)', `${res.wallSeconds.toFixed(1)} s`],
        [
          'checkpoints',
          readdirSync(dir)
            .filter((n) => n.startsWith('checkpoint-'))
            .join(', ') || 'none',
        ],
        ...(res.best.best_global_step !== null
          ? [
              [
                'best evaluation',
                `${cfg.training.metric_for_best_model} ${res.best.best_metric} at step ${res.best.best_global_step}${res.finalFrom ? ` (the final adapter: ${res.finalFrom})` : ''}`,
              ] as [string, string],
            ]
          : []),
        ...(res.earlyStopped
          ? [['early stopping', `stopped after ${res.steps} of ${res.totalSteps} updates`] as [string, string]]
          : []),
        ...(cfg.training.report_to.includes('tensorboard')
          ? [['TensorBoard', `tensorboard --logdir ${join(dir, 'runs')}`] as [string, string]]
          : []),
      ],
      config: cfg,
    });
  // the adapter's model card (README.md, Hugging Face format) with the run's numbers
  if (!res.interrupted && !res.halted && existsSync(join(dir, 'adapter'))) {
    const { modelCardInfo, writeModelCard } = await import('./model-card.js');
    writeModelCard(
      join(dir, 'adapter'),
      modelCardInfo({
        cfg,
        reports: prep.reports,
        records: new MetricsLog(join(dir, 'metrics.jsonl')).read(),
        steps: res.steps,
        totalSteps: res.totalSteps,
        wallSeconds: res.wallSeconds,
        tokensPerSecond: res.tokensPerSecond,
        device: device.device,
        trainableParams: trainable,
        totalParams: total,
        stoppedEarly: res.earlyStopped,
        finalFrom: res.finalFrom,
        bestStep: res.best.best_global_step,
      }),
    );
  }
  // on a GPU: the caching allocator's peaks over the run (what torch.cuda.max_memory_allocated / _reserved report)
  const gpuIndex = cudaIndex(device.device);
  const gpu = gpuIndex === undefined ? undefined : cudaMemoryStats(gpuIndex);
  const gib = (b: number): string => `${(b / 2 ** 30).toFixed(2)} GiB`;
  emit(
    o.json,
    'done',
    {
      device: device.device,
      ...(gpu ? { gpu_peak_allocated_bytes: gpu.peakAllocated, gpu_peak_reserved_bytes: gpu.peakReserved } : {}),
      steps: res.steps,
      total_steps: res.totalSteps,
      interrupted: res.interrupted,
      wall_s: res.wallSeconds,
      tokens_per_second: res.tokensPerSecond,
      optimizer_state_bytes: res.optimizerBytes.actual,
      optimizer_state_bytes_fp32: res.optimizerBytes.fp32,
      report: join(dir, 'report.html'),
      early_stopped: res.earlyStopped,
      best_metric: res.best.best_metric,
      best_global_step: res.best.best_global_step,
      best_model_checkpoint: res.best.best_model_checkpoint,
      final_adapter_from: res.finalFrom,
    },
    `done: ${res.steps}/${res.totalSteps} updates in ${res.wallSeconds.toFixed(1)} s (${res.tokensPerSecond.toFixed(0)} tok/s); optimizer state ${optimizerNote}${gpu ? `; ${device.device} peak ${gib(gpu.peakAllocated)} allocated, ${gib(gpu.peakReserved)} reserved` : ''}; report ${join(dir, 'report.html')}`,
  );
  return res;
}

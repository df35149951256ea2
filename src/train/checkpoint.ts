// Training checkpoints: checkpoint-<step>/ with the trainable tensors (exact bytes), the optimizer state, the adapter
// in PEFT format (when the caller can write one) and trainer_state.json (step, epoch, data position, RNG scheme,
// schedule). Written into a temporary folder and renamed into place, so a crash never leaves a half checkpoint.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError, fieldError } from '../util/errors.js';
import { SafetensorsFile, writeSafetensors, type TensorData } from '../io/safetensors.js';
import { engineDType, tensorData } from '../io/tensor-bytes.js';
import { fromBytes, type Tensor } from '../tensor/index.js';
import type { DataPosition } from './data.js';
import type { OptimizerState } from './optim.js';
import type { ScheduleSpec } from './schedule.js';

export const TRAINER_STATE = 'trainer_state.json';
export const TRAINABLE_FILE = 'trainable.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';

export interface TrainerState {
  /** updates completed */
  global_step: number;
  epoch: number;
  data_position: DataPosition;
  /** how the rows are ordered: mulberry32 Fisher-Yates per (seed, epoch), or file order */
  shuffle: { enabled: boolean; seed: number };
  /**
   * The engine exposes manualSeed but no generator state get/set, so the engine RNG (dropout) is re-seeded at the
   * start of every update from (seed, step); the state is therefore the seed alone.
   */
  rng: { scheme: 'reseed-per-step'; seed: number };
  schedule: ScheduleSpec;
  optimizer: string;
  /** settings that must not change across a resume (data order and step semantics depend on them) */
  invariants: Record<string, unknown>;
  total_tokens: number;
}

/** Read every tensor of a safetensors file into engine tensors (the caller disposes them). */
export function readTensors(file: string): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const st = SafetensorsFile.open(file);
  const tensors: Record<string, Tensor> = {};
  for (const n of st.names()) {
    const i = st.info(n);
    tensors[n] = fromBytes(st.read(n), engineDType(i.dtype, `${file}: tensor ${n}`), i.shape);
  }
  return { tensors, metadata: st.metadata };
}

export interface CheckpointContent {
  step: number;
  trainable: ReadonlyArray<readonly [string, Tensor]>;
  optimizer: OptimizerState;
  state: TrainerState;
  /** writes the adapter (PEFT format) into the given folder */
  saveAdapter?: (dir: string) => void;
}

export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

/** Write checkpoint-<step> atomically under runDir; returns its path. */
export function saveCheckpoint(runDir: string, c: CheckpointContent): string {
  const final = join(runDir, checkpointName(c.step));
  const tmp = join(runDir, `.${checkpointName(c.step)}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const trainable: Record<string, TensorData> = {};
  for (const [n, t] of c.trainable) trainable[n] = tensorData(t);
  writeSafetensors(join(tmp, TRAINABLE_FILE), trainable);
  const opt: Record<string, TensorData> = {};
  for (const [n, t] of Object.entries(c.optimizer.tensors)) opt[n] = tensorData(t);
  writeSafetensors(join(tmp, OPTIMIZER_FILE), opt, { optimizer_meta: JSON.stringify(c.optimizer.meta) });
  if (c.saveAdapter) c.saveAdapter(join(tmp, 'adapter'));
  writeFileSync(join(tmp, TRAINER_STATE), `${JSON.stringify(c.state, null, 2)}\n`);
  // replace an older copy of the same step (a resumed run saving again) only once the new one is complete
  if (existsSync(final)) rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  return final;
}

/** Complete checkpoints under runDir, oldest first. */
export function listCheckpoints(runDir: string): Array<{ step: number; dir: string }> {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(runDir, m[0], TRAINER_STATE)))
    .map((m) => ({ step: Number(m[1]), dir: join(runDir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** Delete all but the `limit` newest checkpoints (HF save_total_limit). */
export function pruneCheckpoints(runDir: string, limit: number | null): string[] {
  if (limit === null) return [];
  const all = listCheckpoints(runDir);
  const gone = all.slice(0, Math.max(0, all.length - limit)).map((c) => c.dir);
  for (const d of gone) rmSync(d, { recursive: true, force: true });
  return gone;
}

/** "latest" -> the newest checkpoint in runDir; otherwise the given folder (checked). */
export function findCheckpoint(runDir: string, which: string): string {
  if (which === 'latest' || which === '') {
    const all = listCheckpoints(runDir);
    if (all.length === 0)
      throw fieldError('resume', `resume latest: no checkpoint-<step>/ with ${TRAINER_STATE} in ${runDir}`);
    return all[all.length - 1]!.dir;
  }
  if (!existsSync(join(which, TRAINER_STATE)))
    throw fieldError('resume', `resume ${which}: not a checkpoint folder (no ${TRAINER_STATE})`);
  return which;
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainerState;
  trainable: Record<string, Tensor>;
  optimizer: OptimizerState;
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  let state: TrainerState;
  const sp = join(dir, TRAINER_STATE);
  try {
    state = JSON.parse(readFileSync(sp, 'utf8')) as TrainerState;
  } catch (e) {
    throw new MedloraError(`${sp}: unreadable (${(e as Error).message})`);
  }
  if (typeof state.global_step !== 'number' || !state.data_position)
    throw new MedloraError(`${sp}: missing global_step or data_position`);
  const trainable = readTensors(join(dir, TRAINABLE_FILE)).tensors;
  const o = readTensors(join(dir, OPTIMIZER_FILE));
  const metaText = o.metadata.optimizer_meta;
  if (metaText === undefined) throw new MedloraError(`${join(dir, OPTIMIZER_FILE)}: no optimizer_meta in the header`);
  return {
    dir,
    state,
    trainable,
    optimizer: { tensors: o.tensors, meta: JSON.parse(metaText) as Record<string, unknown> },
  };
}

/** The resolved config a run folder saved (run.ts writes it at the start of every run). */
export const RESOLVED_CONFIG = 'config.resolved.json';

/**
 * What `--resume X` continues: X is a run folder (its config.resolved.json and newest checkpoint) or a checkpoint
 * folder (its run folder's config). Errors name the folder and what is missing.
 */
export function resumeRun(x: string): { runDir: string; config: string; checkpoint: string } {
  if (!existsSync(x)) throw fieldError('resume', `resume ${x}: no such folder`);
  if (existsSync(join(x, TRAINER_STATE))) {
    const runDir = join(x, '..');
    const config = join(runDir, RESOLVED_CONFIG);
    if (!existsSync(config))
      throw fieldError(
        'resume',
        `resume ${x}: a checkpoint, but its run folder ${runDir} has no ${RESOLVED_CONFIG} (pass config FILE)`,
        ['config'],
      );
    return { runDir, config, checkpoint: x };
  }
  const config = join(x, RESOLVED_CONFIG);
  if (!existsSync(config))
    throw fieldError(
      'resume',
      `resume ${x}: neither a run folder (no ${RESOLVED_CONFIG}) nor a checkpoint folder (no ${TRAINER_STATE})`,
    );
  const all = listCheckpoints(x);
  if (all.length === 0)
    throw fieldError(
      'resume',
      `resume ${x}: the run folder has no checkpoint-<step>/ to continue from (training.save_steps null saves none until the end)`,
    );
  return { runDir: x, config, checkpoint: all[all.length - 1]!.dir };
}

// The 12-step reference trajectories (../shared/fixtures/reference/<name>/expected.json: train_loss, learning_rate,
// grad_norm made by the HF Trainer with the arguments in its "train" entry): medlora's training section with the same
// arguments, the fixture batch as a train.jsonl of token rows, and a whole run folder (data + cfg.yaml) for `medlora
// train`. Shared by the trajectory tests (train/reference, train/packing, distributed/train, adapt/methods-train).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedPath } from '../../src/util/paths.js';
import { perDevice } from '../device.js';

/** The Trainer arguments expected.json records under "train". */
export interface TrajectoryArgs {
  lr: number;
  warmup_steps: number;
  max_steps: number;
  weight_decay: number;
  max_grad_norm: number;
}

/**
 * README tolerances of a 12-step trajectory: train_loss within 1e-3 (F32) / 1e-2 (bf16) absolute; gradients 1e-4 (F32)
 * / 1e-1 (bf16) relative to max-abs, applied to the gradient norm. On a CUDA test device (test/device.ts) F32 keeps
 * them; bf16 gets 2e-2 on the loss, a GUESS to be confirmed by the first GPU run (which prints the max differences).
 */
export function trajectoryTolerances(folder: string): { loss: number; gradNorm: number } {
  return folder.includes('bf16')
    ? perDevice({ loss: 1e-2, gradNorm: 1e-1 }, { loss: 2e-2, gradNorm: 1e-1 })
    : { loss: 1e-3, gradNorm: 1e-4 };
}

/** The training section that replays a reference run: linear schedule, AdamW, no shuffling, a log every step. */
export function referenceTraining(
  t: TrajectoryArgs,
  batchSize: number,
  more: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    learning_rate: t.lr,
    lr_scheduler_type: 'linear',
    warmup_steps: t.warmup_steps,
    max_steps: t.max_steps,
    per_device_train_batch_size: batchSize,
    gradient_accumulation_steps: 1,
    weight_decay: t.weight_decay,
    max_grad_norm: t.max_grad_norm,
    optim: 'adamw_torch',
    logging_steps: 1,
    shuffle: false,
    seed: 0,
    ...more,
  };
}

/** batch.json's rows as train.jsonl ({input_ids, labels} per line). */
export function writeBatchJsonl(file: string, batch: { input_ids: number[][]; labels: number[][] }): void {
  writeFileSync(
    file,
    batch.input_ids.map((ids, i) => JSON.stringify({ input_ids: ids, labels: batch.labels[i] })).join('\n') + '\n',
  );
}

/** expected.json of a reference fixture: the 12-step trajectory and the Trainer arguments that made it. */
export interface ReferenceExpected {
  train_loss: number[];
  learning_rate: number[];
  grad_norm: number[];
  train: TrajectoryArgs;
}

/**
 * A temp dir with train.jsonl (the fixture batch's two rows) and cfg.yaml: LoRA r 4 on q_proj, v_proj from the
 * fixture's adapter, the reference training section (batch 2) with `training` over it, output_dir `out`.
 */
export function referenceRunFolder(
  folder: string,
  training: Record<string, unknown> = {},
): { dir: string; cfg: string; out: string; exp: ReferenceExpected } {
  const f = sharedPath('fixtures', 'reference', folder);
  const exp = JSON.parse(readFileSync(join(f, 'expected.json'), 'utf8')) as ReferenceExpected;
  const batch = JSON.parse(readFileSync(join(f, 'batch.json'), 'utf8')) as {
    input_ids: number[][];
    labels: number[][];
  };
  const dir = mkdtempSync(join(tmpdir(), `medlora-ref-${folder}-`));
  writeBatchJsonl(join(dir, 'train.jsonl'), batch);
  const tr = referenceTraining(exp.train, 2, training);
  const out = join(dir, 'run');
  const cfg = join(dir, 'cfg.yaml');
  writeFileSync(
    cfg,
    [
      `model: ${f}`,
      `data: { train: ${join(dir, 'train.jsonl')} }`,
      `lora: { r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: [q_proj, v_proj], init_adapter: ${join(f, 'adapter')} }`,
      `training: ${JSON.stringify(tr)}`,
      `output_dir: ${out}`,
      '',
    ].join('\n'),
  );
  return { dir, cfg, out, exp };
}

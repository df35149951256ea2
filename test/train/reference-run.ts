// The 12-step reference trajectories (../shared/fixtures/reference/<name>/expected.json: train_loss, learning_rate,
// grad_norm made by the HF Trainer with the arguments in its "train" entry): medlora's training section with the same
// arguments, and the fixture batch as a train.jsonl of token rows. Shared by the trajectory tests (train/reference,
// train/packing, distributed/train, adapt/methods-train).
import { writeFileSync } from 'node:fs';

/** The Trainer arguments expected.json records under "train". */
export interface TrajectoryArgs {
  lr: number;
  warmup_steps: number;
  max_steps: number;
  weight_decay: number;
  max_grad_norm: number;
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

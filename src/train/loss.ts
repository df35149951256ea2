// The summed token cross-entropy of a causal LM, computed only where it counts: position t of row b predicts
// labels[b][t+1], and only positions whose next label is not -100 are scored. The trainer asks the model for logits at
// exactly those positions (ForwardOptions.outputPositions), so the lm_head and the softmax never run on prompt or
// padding positions (the same sum as HF's shifted loss over all positions, for a fraction of the head's work when
// the prompt is masked). The trainer divides by the token count of the whole accumulated batch, so an update is the
// token-weighted mean over all its micro-batches (HF's num_items_in_batch semantics).
import { crossEntropy, type Tensor } from '../tensor/index.js';
import { IGNORE_INDEX } from '../model/loss.js';
import { MedloraError } from '../util/errors.js';

/**
 * The scored positions of a padded batch of label rows (all rows of equal length T): flat indices b*T + t into the
 * [B*T] positions, and the label each of them predicts (labels[b][t+1]).
 */
export function labelledPositions(labels: readonly (readonly number[])[]): { positions: number[]; targets: number[] } {
  const positions: number[] = [];
  const targets: number[] = [];
  const T = labels[0]?.length ?? 0;
  labels.forEach((row, b) => {
    if (row.length !== T)
      throw new MedloraError(`loss: label rows must all have length ${T} (a padded batch); row ${b} has ${row.length}`);
    for (let t = 0; t + 1 < T; t++) {
      const y = row[t + 1]!;
      if (y !== IGNORE_INDEX) {
        positions.push(b * T + t);
        targets.push(y);
      }
    }
  });
  return { positions, targets };
}

/** Sum of token losses (a scalar Tensor with grad) for logits [N, V] at the scored positions and i64 targets [N]. */
export function summedTokenLoss(logits: Tensor, targets: Tensor): Tensor {
  if (logits.ndim !== 2 || targets.ndim !== 1 || logits.size(0) !== targets.size(0)) {
    throw new MedloraError(
      `loss: expected logits [N, vocab] and targets [N], got [${logits.shape.join(', ')}] and [${targets.shape.join(', ')}]`,
    );
  }
  // targets are built on the host; the logits live where the model does
  const y = targets.device === logits.device ? targets : targets.to(logits.device);
  return crossEntropy(logits.float(), y, { ignoreIndex: IGNORE_INDEX, reduction: 'sum' });
}

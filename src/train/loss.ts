// The summed token cross-entropy of a causal LM (logits[:, :-1] vs labels[:, 1:], -100 ignored), in f32. The trainer
// divides by the token count of the whole accumulated batch, so an update is the token-weighted mean over all its
// micro-batches (HF's num_items_in_batch semantics).
import { crossEntropy, type Tensor } from '../tensor/index.js';

/** Sum of token losses (a scalar Tensor with grad) for logits [B, T, V] and i64 labels [B, T]. */
export function summedTokenLoss(logits: Tensor, labels: Tensor): Tensor {
  const V = logits.size(-1);
  const l = logits.slice(1, 0, -1).float().reshape([-1, V]);
  const y = labels.slice(1, 1).reshape([-1]);
  return crossEntropy(l, y, { ignoreIndex: -100, reduction: 'sum' });
}

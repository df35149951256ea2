// Causal-LM loss with Hugging Face semantics: logits[:, :-1] predict labels[:, 1:], positions labelled -100 do not
// count, cross-entropy in float32. Returns the sum and the token count too, so callers can take token-weighted means
// across batches (gradient accumulation, dataset loss).
import { cat, crossEntropy, full, type Tensor } from '../tensor/index.js';
import { IGNORE_INDEX } from '../data/encode.js';
import { MedloraError } from '../util/errors.js';

// one definition of the ignored label, where the data is encoded; re-exported for loss callers
export { IGNORE_INDEX };

export interface LossResult {
  /** mean over counted tokens (0 when none count); carries the graph when logits do */
  loss: Tensor;
  /** sum of the per-token losses (carries the graph) */
  sumLoss: Tensor;
  /** number of counted tokens */
  tokens: number;
}

/** logits [B, T, V] (any float dtype), labels [B, T] (integer, -100 = ignored). */
export function causalLmLoss(logits: Tensor, labels: Tensor): LossResult {
  if (logits.ndim !== 3)
    throw new MedloraError(`loss: logits must be [batch, seq, vocab], got [${logits.shape.join(', ')}]`);
  const [B, T, V] = logits.shape as [number, number, number];
  if (labels.ndim !== 2 || labels.size(0) !== B || labels.size(1) !== T) {
    throw new MedloraError(`loss: labels must be [${B}, ${T}] like the logits, got [${labels.shape.join(', ')}]`);
  }
  // As transformers' ForCausalLMLoss: shift the labels (append one -100 per row), not the logits, so the [B, T, V]
  // logits are only viewed as [B*T, V] and upcast once; shifting the logits would copy them (a strided narrow) and, in
  // backward, fill a zero [B, T, V] gradient and copy into it (docs/PERFORMANCE.md). The last position of each row
  // gets the ignored label, so the counted terms and their sum are the same.
  // labels are usually built on the CPU: they follow the logits to their device (a CUDA model's test loss)
  const flatLogits = logits.reshape([B * T, V]).float();
  const device = logits.device;
  const shiftLabels = cat(
    [labels.narrow(1, 1, T - 1).to({ dtype: 'i64', device }), full([B, 1], IGNORE_INDEX, { dtype: 'i64', device })],
    1,
  ).reshape([B * T]);
  const tokens = shiftLabels.ne(IGNORE_INDEX).sum().item();
  const sumLoss = crossEntropy(flatLogits, shiftLabels, { ignoreIndex: IGNORE_INDEX, reduction: 'sum' });
  // torch's mean over zero tokens is NaN; 0 keeps accumulation loops simple (a batch with nothing to learn adds 0)
  const loss = tokens > 0 ? sumLoss.div(tokens) : sumLoss.mul(0);
  return { loss, sumLoss, tokens };
}

// Causal-LM loss with Hugging Face semantics: logits[:, :-1] predict labels[:, 1:], positions labelled -100 do not
// count, cross-entropy in float32. Returns the sum and the token count too, so callers can take token-weighted means
// across batches (gradient accumulation, dataset loss).
import { crossEntropy, type Tensor } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';

export const IGNORE_INDEX = -100;

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
  if (logits.ndim !== 3) throw new MedloraError(`loss: logits must be [batch, seq, vocab], got [${logits.shape.join(', ')}]`);
  const [B, T, V] = logits.shape as [number, number, number];
  if (labels.ndim !== 2 || labels.size(0) !== B || labels.size(1) !== T) {
    throw new MedloraError(`loss: labels must be [${B}, ${T}] like the logits, got [${labels.shape.join(', ')}]`);
  }
  const shiftLogits = logits.narrow(1, 0, T - 1).reshape([B * (T - 1), V]).float();
  const shiftLabels = labels.narrow(1, 1, T - 1).reshape([B * (T - 1)]).to('i64');
  const tokens = shiftLabels.ne(IGNORE_INDEX).sum().item();
  const sumLoss = crossEntropy(shiftLogits, shiftLabels, { ignoreIndex: IGNORE_INDEX, reduction: 'sum' });
  // torch's mean over zero tokens is NaN; 0 keeps accumulation loops simple (a batch with nothing to learn adds 0)
  const loss = tokens > 0 ? sumLoss.div(tokens) : sumLoss.mul(0);
  return { loss, sumLoss, tokens };
}

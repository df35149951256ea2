// Token-weighted mean loss and perplexity of a causal LM over a dataset of (input_ids, labels) rows: the "test loss"
// recipes report. Rows are batched with right padding (pad positions labelled -100); with causal attention a real token
// never sees the padding after it, so no attention mask is needed and the result equals row-by-row evaluation.
import { noGrad, scope, tensor } from '../tensor/index.js';
import { MedloraError, fieldError } from '../util/errors.js';
import type { CausalLM } from './causal-lm.js';
import { causalLmLoss, IGNORE_INDEX } from './loss.js';

export interface LossRow {
  input_ids: number[];
  labels: number[];
}

export interface DatasetLoss {
  /** sum of token losses / tokens (NaN when no token counts) */
  loss: number;
  /** exp(loss) */
  perplexity: number;
  tokens: number;
  rows: number;
}

export interface DatasetLossOptions {
  batchSize?: number;
  /** after each batch: rows done, running mean loss */
  onBatch?: (rowsDone: number, meanLoss: number) => void;
}

export function datasetLoss(model: CausalLM, rows: LossRow[], o: DatasetLossOptions = {}): DatasetLoss {
  const bs = o.batchSize ?? 8;
  if (!Number.isInteger(bs) || bs < 1)
    throw fieldError('batch_size', `batch_size must be a positive integer, got ${bs}`);
  let sum = 0,
    tokens = 0;
  for (let s = 0; s < rows.length; s += bs) {
    const batch = rows.slice(s, s + bs);
    const T = Math.max(...batch.map((r) => r.input_ids.length));
    const ids = batch.map((r) => [...r.input_ids, ...new Array<number>(T - r.input_ids.length).fill(0)]);
    const labels = batch.map((r) => [...r.labels, ...new Array<number>(T - r.labels.length).fill(IGNORE_INDEX)]);
    const r = scope(() =>
      noGrad(() => {
        const l = causalLmLoss(model.forward(tensor(ids, { dtype: 'i64' })), tensor(labels, { dtype: 'i64' }));
        return { sum: l.sumLoss.item(), tokens: l.tokens };
      }),
    );
    sum += r.sum;
    tokens += r.tokens;
    o.onBatch?.(s + batch.length, tokens ? sum / tokens : NaN);
  }
  const loss = tokens ? sum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), tokens, rows: rows.length };
}

/**
 * Check one pre-tokenized row against the vocabulary; `where` names it (file:line) in the error. Labels default to
 * the input ids (HF's LM loss when no labels are given).
 */
export function checkLossRow(v: Record<string, unknown>, vocab: number, where: string): LossRow[] {
  const ids = v.input_ids;
  const labels = v.labels ?? ids;
  const isRows = Array.isArray(ids) && ids.length > 0 && Array.isArray(ids[0]);
  const idRows = (isRows ? ids : [ids]) as unknown[];
  const labelRows = (isRows ? labels : [labels]) as unknown[];
  if (!Array.isArray(labelRows) || labelRows.length !== idRows.length)
    throw new MedloraError(`${where}: "labels" must have one row per "input_ids" row`);
  return idRows.map((row, i) => {
    const lab = labelRows[i];
    const at = isRows ? `${where}: row ${i}` : where;
    if (!Array.isArray(row) || row.length < 2)
      throw new MedloraError(`${at}: "input_ids" must be an array of at least 2 token ids`);
    if (!Array.isArray(lab) || lab.length !== row.length)
      throw new MedloraError(`${at}: "labels" must be an array as long as "input_ids" (${row.length})`);
    row.forEach((x, j) => {
      if (!Number.isInteger(x) || (x as number) < 0 || (x as number) >= vocab)
        throw new MedloraError(`${at}: input_ids[${j}] = ${JSON.stringify(x)} is not a token id in [0, ${vocab})`);
    });
    lab.forEach((x, j) => {
      if (!Number.isInteger(x) || ((x as number) !== IGNORE_INDEX && ((x as number) < 0 || (x as number) >= vocab))) {
        throw new MedloraError(
          `${at}: labels[${j}] = ${JSON.stringify(x)} is neither -100 nor a token id in [0, ${vocab})`,
        );
      }
    });
    const mask = v.attention_mask;
    if (mask !== undefined) {
      const m = (isRows ? (mask as unknown[])[i] : mask) as unknown;
      if (Array.isArray(m) && m.some((x) => x === 0))
        throw new MedloraError(
          `${at}: "attention_mask" has padding; give rows without padding (they are padded per batch)`,
        );
    }
    return { input_ids: row as number[], labels: lab as number[] };
  });
}

// The trainer's data: pre-tokenized rows {input_ids, labels} or canonical records encoded with the model's tokenizer,
// and a batch source with seeded per-epoch shuffling whose position (epoch, micro-batch index) is all a resume needs.
import { MedloraError } from '../util/errors.js';
import { newReport, readJsonl, recordProblem, type ReadReport } from '../data/jsonl.js';
import { mulberry32, shuffle } from '../data/split.js';
import { IGNORE_INDEX } from '../data/encode.js';
import type { MedRecord } from '../data/schema.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { DataConfig } from './config.js';
import { labelledPositions } from './loss.js';

/** One training example: token ids and labels (-100 = not trained), same length. */
export interface Example {
  input_ids: number[];
  labels: number[];
}

export interface LoadReport {
  file: string;
  format: 'tokenized' | 'records';
  examples: number;
  /** rows or records left out because they did not fit max_length */
  dropped: number;
  /** records whose input text was shortened to fit */
  truncated: number;
  /** label tokens that count in the loss (after the causal shift) */
  trainTokens: number;
  read: ReadReport;
}

/** Why a parsed JSON value is not a pre-tokenized row (or undefined when it is one). */
export function tokenizedRowProblem(v: unknown, vocabSize?: number): string | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v))
    return 'expected a JSON object {"input_ids": [...], "labels": [...]}';
  const o = v as Record<string, unknown>;
  const ids = o.input_ids,
    labels = o.labels;
  if (!Array.isArray(ids) || ids.length < 2) return '"input_ids" must be a list of at least 2 token ids';
  if (!Array.isArray(labels)) return '"labels" must be a list (use -100 for positions that are not trained)';
  if (labels.length !== ids.length)
    return `"labels" has ${labels.length} entries but "input_ids" has ${ids.length}; they must be the same length`;
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || (vocabSize !== undefined && t >= vocabSize)) {
      return `input_ids[${i}] = ${JSON.stringify(t)} is not a token id${vocabSize !== undefined ? ` in [0, ${vocabSize})` : ''}`;
    }
    const l = labels[i];
    if (
      typeof l !== 'number' ||
      !Number.isInteger(l) ||
      (l !== IGNORE_INDEX && (l < 0 || (vocabSize !== undefined && l >= vocabSize)))
    ) {
      return `labels[${i}] = ${JSON.stringify(l)} is neither -100 nor a token id${vocabSize !== undefined ? ` in [0, ${vocabSize})` : ''}`;
    }
  }
  return undefined;
}

/** Labels that count after the causal shift (labels[1:] != -100; the rule is labelledPositions'). */
export function countTargets(e: Example): number {
  return labelledPositions([e.labels]).targets.length;
}

async function firstValue(file: string): Promise<unknown> {
  const rep = newReport(file);
  for await (const v of readJsonl<unknown>(file, () => undefined, rep, { skipInvalid: true })) return v;
  return undefined;
}

export interface LoadOptions {
  data: DataConfig;
  /** needed for records; also bounds token ids of tokenized rows */
  tokenizer?: () => Promise<TextTokenizer>;
  vocabSize?: number;
}

/** Read a JSONL file as training examples (format from the config or detected from the first row). */
export async function loadExamples(file: string, o: LoadOptions): Promise<{ examples: Example[]; report: LoadReport }> {
  let format = o.data.format;
  if (format === 'auto') {
    const v = await firstValue(file);
    const obj = v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
    if ('input_ids' in obj) format = 'tokenized';
    else if ('task' in obj && 'input' in obj) format = 'records';
    else
      throw new MedloraError(
        `${file}:1: cannot tell the data format: expected pre-tokenized rows {"input_ids", "labels"} or canonical records {"id", "task", "input", "gold"}`,
      );
  }
  const read = newReport(file);
  const max = o.data.max_length ?? undefined;
  const examples: Example[] = [];
  let dropped = 0,
    truncated = 0;
  if (format === 'tokenized') {
    for await (const row of readJsonl<Example>(file, (v) => tokenizedRowProblem(v, o.vocabSize), read)) {
      if (max !== undefined && row.input_ids.length > max) {
        if (o.data.overflow === 'error')
          throw new MedloraError(
            `${file}: row ${read.records} has ${row.input_ids.length} tokens > data.max_length ${max}`,
          );
        dropped++;
        continue;
      }
      examples.push({ input_ids: row.input_ids, labels: row.labels });
    }
  } else {
    if (!o.tokenizer)
      throw new MedloraError(
        `${file}: records need a tokenizer (set tokenizer: DIR or use a model folder with tokenizer.json)`,
      );
    const tok = await o.tokenizer();
    const { encodeRecord } = await import('../data/encode.js');
    for await (const r of readJsonl<MedRecord>(file, recordProblem, read)) {
      const e = encodeRecord(r, tok, { style: o.data.prompt_style, maxLength: max, overflow: o.data.overflow });
      if (!e.ok) {
        dropped++;
        continue;
      }
      if (e.example.truncated) truncated++;
      examples.push({ input_ids: e.example.input_ids, labels: e.example.labels });
    }
  }
  if (examples.length === 0)
    throw new MedloraError(`${file}: no usable examples (${dropped} dropped by data.max_length ${max})`);
  const trainTokens = examples.reduce((a, e) => a + countTargets(e), 0);
  return { examples, report: { file, format, examples: examples.length, dropped, truncated, trainTokens, read } };
}

/** A padded micro-batch as plain arrays (right padding: pad id in input_ids, -100 in labels, 0 in the mask). */
export interface MicroBatch {
  input_ids: number[][];
  labels: number[][];
  attention_mask: number[][];
  /** whether any row is padded */
  padded: boolean;
  /** the scored positions (flat b*T+t) and the labels they predict: what the loss is computed on */
  scored: { positions: number[]; targets: number[] };
  /** loss tokens after the causal shift (scored.targets.length) */
  targets: number;
  /** padding-free packing (packBatch): positions restarting at 0 per example, and each token's example index */
  position_ids?: number[][];
  segment_ids?: number[][];
  /** packBatch: the length of each packed example, in order (attention runs per segment, src/model/layers.ts) */
  segment_lengths?: number[];
}

export function padBatch(rows: readonly Example[], padId: number): MicroBatch {
  const T = Math.max(...rows.map((r) => r.input_ids.length));
  const out: MicroBatch = {
    input_ids: [],
    labels: [],
    attention_mask: [],
    padded: false,
    scored: { positions: [], targets: [] },
    targets: 0,
  };
  for (const r of rows) {
    const n = T - r.input_ids.length;
    if (n > 0) out.padded = true;
    out.input_ids.push([...r.input_ids, ...Array<number>(n).fill(padId)]);
    out.labels.push([...r.labels, ...Array<number>(n).fill(IGNORE_INDEX)]);
    out.attention_mask.push([...r.input_ids.map(() => 1), ...Array<number>(n).fill(0)]);
  }
  out.scored = labelledPositions(out.labels);
  out.targets = out.scored.targets.length;
  return out;
}

/**
 * Padding-free packing of a micro-batch (training.padding_free; HF DataCollatorWithFlattening, TRL padding_free): the
 * rows concatenated into ONE row with per-example positions and segment ids (the model then attends block-diagonally,
 * src/model/layers.ts packedAttnMask), so no pad token is computed. Each example's first label is set to -100: under
 * the causal shift it would be predicted by the previous example's last token, a target the unpacked batch never has
 * (an unpacked row's first label is never a target either), so the scored targets are exactly the unpacked ones.
 */
export function packBatch(rows: readonly Example[]): MicroBatch {
  const ids: number[] = [],
    labels: number[] = [],
    pos: number[] = [],
    seg: number[] = [];
  rows.forEach((r, s) => {
    r.input_ids.forEach((t, i) => {
      ids.push(t);
      labels.push(i === 0 ? IGNORE_INDEX : r.labels[i]!);
      pos.push(i);
      seg.push(s);
    });
  });
  const scored = labelledPositions([labels]);
  return {
    input_ids: [ids],
    labels: [labels],
    attention_mask: [ids.map(() => 1)],
    padded: false,
    scored,
    targets: scored.targets.length,
    position_ids: [pos],
    segment_ids: [seg],
    segment_lengths: rows.map((r) => r.input_ids.length).filter((l) => l > 0),
  };
}

/** A micro-batch of rows: packed (training.padding_free) or right-padded to the longest row. */
export function makeBatch(rows: readonly Example[], padId: number, packed: boolean): MicroBatch {
  return packed ? packBatch(rows) : padBatch(rows, padId);
}

/** Where the batch source stands: the epoch and the next micro-batch within it. */
export interface DataPosition {
  epoch: number;
  index: number;
}

/**
 * Micro-batches in epochs. The order of epoch e is a Fisher-Yates shuffle with mulberry32(seed, e) (or the file
 * order when shuffle is off), recomputed from (seed, e) on demand: the position alone restores it on resume.
 * The last micro-batch of an epoch may be smaller (drop_last false, as HF's default dataloader).
 */
export class BatchSource {
  private orderEpoch = -1;
  private order: number[] = [];
  pos: DataPosition = { epoch: 0, index: 0 };

  constructor(
    readonly examples: readonly Example[],
    readonly batchSize: number,
    readonly shuffle: boolean,
    readonly seed: number,
    readonly padId: number,
    readonly packed = false,
  ) {
    if (examples.length === 0) throw new MedloraError('training data is empty');
  }

  get batchesPerEpoch(): number {
    return Math.ceil(this.examples.length / this.batchSize);
  }

  /** the epoch's row order */
  orderOf(epoch: number): number[] {
    if (this.orderEpoch !== epoch) {
      const idx = this.examples.map((_, i) => i);
      // a distinct, reproducible stream per (seed, epoch)
      this.order = this.shuffle ? shuffle(idx, mulberry32((this.seed * 1000003 + epoch * 7919 + 1) >>> 0)) : idx;
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  /** Micro-batches left in the current epoch. */
  remainingInEpoch(): number {
    return this.batchesPerEpoch - this.pos.index;
  }

  /** The next micro-batch (moving to the next epoch first when the current one is used up). */
  next(): MicroBatch {
    return makeBatch(this.nextRows(), this.padId, this.packed);
  }

  /** The next micro-batch's rows, unpadded (data parallelism pads each rank's share of them). */
  nextRows(): Example[] {
    if (this.pos.index >= this.batchesPerEpoch) this.pos = { epoch: this.pos.epoch + 1, index: 0 };
    const order = this.orderOf(this.pos.epoch);
    const rows = order
      .slice(this.pos.index * this.batchSize, (this.pos.index + 1) * this.batchSize)
      .map((i) => this.examples[i]!);
    this.pos = { epoch: this.pos.epoch, index: this.pos.index + 1 };
    return rows;
  }

  /** Fractional epochs consumed (HF's logged "epoch"). */
  epochFloat(): number {
    return this.pos.epoch + this.pos.index / this.batchesPerEpoch;
  }
}

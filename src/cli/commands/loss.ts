// `medlora loss`: token-weighted mean loss and perplexity of a model (+ optional LoRA adapter) over a dataset: JSONL
// lines of pre-tokenized {"input_ids": [...], "labels": [...]} (-100 = ignored) or canonical task records (encoded
// with the model's tokenizer and prompt style, the answer + EOS being what is scored).
import type { CommandSpec } from '../command.js';
import { bool, num, str } from '../command.js';
import { MedloraError, prefixed } from '../../util/errors.js';
import { THREADS_OPTION } from '../threads.js';
import { DEVICE_OPTION, deviceFromFlag } from '../device.js';

export const lossCommand: CommandSpec = {
  name: 'loss',
  summary: 'Mean token loss and perplexity of a model over a dataset (the "test loss")',
  options: {
    model: {
      type: 'string',
      value: 'DIR',
      required: true,
      description: 'Hugging Face model folder (config.json + safetensors)',
    },
    adapter: { type: 'string', value: 'DIR', description: 'PEFT LoRA adapter folder to apply' },
    data: {
      type: 'string',
      value: 'FILE',
      required: true,
      description: 'JSONL: {"input_ids","labels"} rows or canonical task records',
    },
    tokenizer: { type: 'string', value: 'DIR', description: 'tokenizer folder for task records (default: --model)' },
    prompt: {
      type: 'string',
      value: 'STYLE',
      field: 'prompt_style',
      description:
        "prompt style for task records: alpaca or chat (default: the --adapter's training contract, else alpaca)",
    },
    'max-length': {
      type: 'number',
      value: 'N',
      description:
        "encode task records to at most N tokens (input shortened; default: the --adapter's training contract)",
    },
    overflow: {
      type: 'string',
      value: 'POLICY',
      default: 'error',
      description: 'a record whose target does not fit --max-length: error, or drop it (counted on stderr)',
    },
    'batch-size': { type: 'number', value: 'N', description: 'rows per forward pass', default: 8 },
    dtype: { type: 'string', value: 'f32|bf16', description: "compute dtype (default: the checkpoint's)" },
    device: DEVICE_OPTION,
    threads: THREADS_OPTION,
    json: { type: 'boolean', description: 'print {"loss", "perplexity", "tokens", "rows"} as JSON' },
  },
  details:
    'Loss = sum of token cross-entropies over labels != -100 (after the causal shift) / number of such tokens, ' +
    'over the whole file; perplexity = exp(loss).',
  async run(args) {
    const { loadModel } = await import('../../model/load.js');
    const { datasetLoss, checkLossRow } = await import('../../model/dataset-loss.js');
    const { readLines, recordProblem } = await import('../../data/jsonl.js');
    const { Progress } = await import('../../util/progress.js');
    const dtype = str(args, 'dtype');
    if (dtype !== undefined && dtype !== 'f32' && dtype !== 'bf16')
      throw new MedloraError(`medlora loss: --dtype must be f32 or bf16, got "${dtype}"`);
    const device = await deviceFromFlag(args);
    const modelDir = str(args, 'model')!;
    const file = str(args, 'data')!;
    const json = bool(args, 'json');
    const overflow = str(args, 'overflow') ?? 'error';
    if (overflow !== 'error' && overflow !== 'drop')
      throw new MedloraError(`--overflow must be error or drop, got "${overflow}"`);
    let dropped = 0;
    // task records are prompted as the adapter was trained (its medlora_contract.json), flags winning with a warning
    const { explicitPrompt, CONTRACT_FLAGS } = await import('./eval.js');
    const { inferenceSettings } = await import('../../infer/load-extractor.js');
    const { settings } = inferenceSettings(str(args, 'adapter'), {
      ...explicitPrompt(args),
      ...(dtype !== undefined ? { dtype } : {}),
      fieldNames: CONTRACT_FLAGS,
    });
    for (const w of settings.warnings) console.error(`warning: ${w}`);
    const prompt = { style: settings.prompt_style, maxLength: settings.max_length };
    const computeDtype = settings.compute_dtype as 'f32' | 'bf16' | 'f16' | undefined;
    const model = loadModel(modelDir, { ...(computeDtype ? { dtype: computeDtype } : {}), device });
    try {
      if (str(args, 'adapter')) {
        const { loadAnyAdapter } = await import('../../adapt/methods/index.js');
        loadAnyAdapter(model, str(args, 'adapter')!);
      }
      const vocab = model.config.vocab_size;
      const rows: Array<{ input_ids: number[]; labels: number[] }> = [];
      let encodeRecord:
        ((v: unknown, where: string) => { input_ids: number[]; labels: number[] } | undefined) | undefined;
      for await (const { line, text } of readLines(file)) {
        if (text.trim() === '') continue;
        const where = `${file}:${line}`;
        let v: unknown;
        try {
          v = JSON.parse(text);
        } catch (e) {
          throw new MedloraError(`${where}: invalid JSON (${(e as Error).message})`);
        }
        if (v === null || typeof v !== 'object' || Array.isArray(v))
          throw new MedloraError(`${where}: expected a JSON object`);
        if ('input_ids' in v) {
          rows.push(...checkLossRow(v as Record<string, unknown>, vocab, where));
          continue;
        }
        const problem = recordProblem(v);
        if (problem)
          throw new MedloraError(
            `${where}: neither a pre-tokenized row (no "input_ids") nor a task record: ${problem}`,
          );
        encodeRecord ??= await recordEncoder(
          str(args, 'tokenizer') ?? modelDir,
          prompt.style,
          prompt.maxLength,
          overflow,
        );
        const r = encodeRecord(v, where);
        if (r === undefined) {
          dropped++;
          continue;
        }
        rows.push(...checkLossRow(r as unknown as Record<string, unknown>, vocab, where));
      }
      if (dropped)
        console.error(`note: ${dropped} record(s) dropped: their answer does not fit --max-length (--overflow drop)`);
      if (rows.length === 0)
        throw new MedloraError(
          `${file}: no rows (expected JSONL lines${dropped ? `; ${dropped} dropped by --overflow drop` : ''})`,
        );
      const bar = new Progress({ total: rows.length, label: 'loss', unit: 'rows', quiet: json });
      const res = datasetLoss(model, rows, {
        batchSize: num(args, 'batch-size'),
        onBatch: (done, mean) => bar.update(done, Number.isFinite(mean) ? { loss: mean } : {}),
      });
      bar.end();
      if (res.tokens === 0) throw new MedloraError(`${file}: no token counts (every label is -100)`);
      if (json) console.log(JSON.stringify(res));
      else
        console.log(
          `loss ${res.loss.toFixed(6)}  perplexity ${res.perplexity.toFixed(4)}  over ${res.tokens} tokens in ${res.rows} rows`,
        );
      return 0;
    } finally {
      model.dispose();
    }
  },
};

/** Encoder for canonical task records with a tokenizer and prompt style (src/data encode: prompt -100, answer + EOS). */
async function recordEncoder(
  tokDir: string,
  style: string | undefined,
  maxLength: number | undefined,
  overflow: 'drop' | 'error',
): Promise<(v: unknown, where: string) => { input_ids: number[]; labels: number[] } | undefined> {
  const { loadTokenizer } = await import('../../tokenize/tokenizer.js');
  const { encodeRecord } = await import('../../data/encode.js');
  const { parsePromptStyle } = await import('../../data/prompt.js');
  const tok = loadTokenizer(tokDir);
  const s = parsePromptStyle(style);
  return (v, where) => {
    let r;
    try {
      r = encodeRecord(v as Parameters<typeof encodeRecord>[0], tok, {
        style: s,
        ...(maxLength ? { maxLength } : {}),
        overflow,
      });
    } catch (e) {
      throw e instanceof MedloraError ? prefixed(`${where}: `, e) : e;
    }
    if (!r.ok) return undefined;
    return r.example;
  };
}

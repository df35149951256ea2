// `medlora data preview FILE --tokenizer DIR`: each token of the first records and whether it carries loss.
import { bool, num, str, type CommandSpec } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { readRecords, newReport } from '../../data/jsonl.js';
import { encodeRecord, type OverflowPolicy } from '../../data/encode.js';
import { parsePromptStyle, type PromptStyle } from '../../data/prompt.js';
import { previewExample, renderPreview, type PreviewSummary } from '../../data/preview.js';
import { loadDataTokenizer } from '../../data/load-tokenizer.js';
import type { TextTokenizer } from '../../tokenize/types.js';

export async function previewFile(
  file: string,
  tok: TextTokenizer,
  opts: { n: number; style: PromptStyle; maxLength?: number; overflow?: OverflowPolicy },
): Promise<Array<PreviewSummary | { id: string; dropped: string }>> {
  const out: Array<PreviewSummary | { id: string; dropped: string }> = [];
  for await (const r of readRecords(file, newReport(file))) {
    if (out.length >= opts.n) break;
    const e = encodeRecord(r, tok, {
      style: opts.style,
      ...(opts.maxLength !== undefined ? { maxLength: opts.maxLength } : {}),
      overflow: opts.overflow ?? 'drop',
    });
    out.push(e.ok ? previewExample(e.example, tok) : { id: e.id, dropped: e.reason });
  }
  return out;
}

export const dataPreview: CommandSpec = {
  name: 'data preview',
  summary: 'show each token of the first records and whether it is trained on (only the answer and its EOS should be)',
  positionals: 'FILE',
  options: {
    tokenizer: { type: 'string', value: 'DIR', description: 'model folder with tokenizer.json', required: true },
    n: { type: 'number', short: 'n', value: 'N', description: 'records to show', default: 3 },
    prompt: {
      type: 'string',
      value: 'STYLE',
      field: 'prompt_style',
      description: 'prompt style: alpaca or chat',
      default: 'alpaca',
    },
    'max-length': {
      type: 'number',
      value: 'N',
      description: 'apply the truncation policy at this length (the input is cut, never the target)',
    },
    overflow: {
      type: 'string',
      value: 'POLICY',
      description: 'a record whose target does not fit max-length: drop (shown as dropped) or error',
      default: 'drop',
    },
    json: { type: 'boolean', description: 'print tokens as JSON' },
  },
  async run(args) {
    const file = args.positionals[0];
    if (!file) throw new MedloraError('usage: medlora data preview FILE --tokenizer DIR');
    const n = num(args, 'n')!;
    if (!Number.isInteger(n) || n < 1) throw new MedloraError(`-n must be a positive integer, got ${n}`);
    const tok = await loadDataTokenizer(str(args, 'tokenizer')!);
    const maxLength = num(args, 'max-length');
    const overflow = str(args, 'overflow')!;
    if (overflow !== 'drop' && overflow !== 'error')
      throw new MedloraError(`--overflow must be drop or error, got "${overflow}"`);
    const res = await previewFile(file, tok, {
      n,
      style: parsePromptStyle(str(args, 'prompt')),
      overflow,
      ...(maxLength !== undefined ? { maxLength } : {}),
    });
    if (bool(args, 'json')) {
      console.log(JSON.stringify(res));
      return 0;
    }
    const color = Boolean(process.stdout.isTTY);
    for (const p of res)
      console.log('dropped' in p ? `== ${p.id}: dropped (${p.dropped})` : `${renderPreview(p, color)}\n`);
    return 0;
  },
};

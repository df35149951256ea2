// `medlora data stats FILE`: records per task / label and the prompt+target length histogram (terminal + HTML).
import { writeFileSync } from 'node:fs';
import { bool, str, type CommandSpec } from '../command.js';
import { Progress } from '../../util/progress.js';
import { MedloraError } from '../../util/errors.js';
import { invalidSummary, loadRecords } from '../../data/jsonl.js';
import { countStats, lengthStats, renderStatsHtml, renderStatsText, type DataStats } from '../../data/stats.js';
import { parsePromptStyle, promptAndTarget, type PromptStyle } from '../../data/prompt.js';
import { encodeRecord } from '../../data/encode.js';
import { loadDataTokenizer } from '../../data/load-tokenizer.js';
import type { MedRecord } from '../../data/schema.js';
import type { TextTokenizer } from '../../tokenize/types.js';

/** Stats of records; token lengths (prompt + target + EOS, no truncation) with a tokenizer, else character lengths. */
export function computeStats(
  records: MedRecord[],
  style: PromptStyle,
  tok?: TextTokenizer,
  progress?: Progress,
): DataStats {
  const st = countStats(records);
  const lengths: number[] = [];
  for (const r of records) {
    if (tok) {
      const e = encodeRecord(r, tok, { style });
      if (e.ok) lengths.push(e.example.input_ids.length);
    } else {
      const { prompt, target } = promptAndTarget(r, style);
      lengths.push(prompt.length + target.length);
    }
    progress?.tick();
  }
  st.lengths = lengthStats(lengths, tok ? 'tokens' : 'chars');
  return st;
}

export const dataStats: CommandSpec = {
  name: 'data stats',
  summary: 'records per task and relation / entity type; prompt+target length histogram and a suggested max_length',
  positionals: 'FILE',
  options: {
    tokenizer: {
      type: 'string',
      value: 'DIR',
      description: 'model folder with tokenizer.json (token lengths, suggested max_length)',
    },
    prompt: {
      type: 'string',
      value: 'STYLE',
      field: 'prompt_style',
      description: "prompt style: alpaca or chat (the tokenizer's chat template)",
      default: 'alpaca',
    },
    html: {
      type: 'string',
      value: 'FILE.html',
      description: 'where to save the HTML chart (default: FILE with .stats.html)',
    },
    'skip-invalid': { type: 'boolean', description: 'skip malformed lines (counted and reported)' },
    json: { type: 'boolean', description: 'print the statistics as JSON' },
  },
  async run(args) {
    const file = args.positionals[0];
    if (!file) throw new MedloraError('usage: medlora data stats FILE');
    const style = parsePromptStyle(str(args, 'prompt'));
    const tokDir = str(args, 'tokenizer');
    const tok = tokDir ? await loadDataTokenizer(tokDir) : undefined;
    if (style === 'chat' && !tok) throw new MedloraError('--prompt chat needs --tokenizer DIR');
    const { records, report } = await loadRecords(file, { skipInvalid: bool(args, 'skip-invalid') });
    const json = bool(args, 'json');
    // progress goes to stderr (never stdout: with --json, stdout holds exactly one JSON document)
    const progress = tok ? new Progress({ total: records.length, label: 'tokenizing', quiet: json }) : undefined;
    const st = computeStats(records, style, tok, progress);
    progress?.end();
    const html = str(args, 'html') ?? file.replace(/\.jsonl?$/, '') + '.stats.html';
    try {
      writeFileSync(html, renderStatsHtml(st, file));
    } catch (e) {
      throw new MedloraError(
        `cannot write the chart to ${html} (${(e as Error).message}); choose another place with --html FILE.html`,
      );
    }
    if (json) {
      console.log(JSON.stringify({ file, ...st, html, invalid: report.invalid }));
    } else {
      console.log(renderStatsText(st, file));
      console.log(`chart: ${html}`);
      const inv = invalidSummary(report);
      if (inv) console.error(inv);
    }
    return 0;
  },
};

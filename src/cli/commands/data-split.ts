// `medlora data split FILE --out DIR`: de-duplicated, stratified, grouped, leak-checked train/validation/test JSONL.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bool, num, str, type CommandSpec } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { invalidSummary, loadRecords, writeJsonl } from '../../data/jsonl.js';
import { parseRatios, SPLIT_NAMES, splitRecords, type Stratify } from '../../data/split.js';

export const dataSplit: CommandSpec = {
  name: 'data split',
  summary: 'split records into train / validation / test: de-duplicated, stratified, grouped, leak-checked',
  positionals: 'FILE',
  options: {
    out: {
      type: 'string',
      value: 'DIR',
      description: 'output folder (train.jsonl, validation.jsonl, test.jsonl, split-report.json)',
      required: true,
    },
    ratios: {
      type: 'string',
      value: 'R',
      description: 'train,validation[,test] fractions summing to 1',
      default: '0.8,0.1,0.1',
    },
    seed: { type: 'number', value: 'N', description: 'PRNG seed (same seed, same split)', default: 42 },
    stratify: {
      type: 'string',
      value: 'BY',
      description: 'task, relation (rarest relation / entity label) or none',
      default: 'relation',
    },
    group: {
      type: 'string',
      value: 'PATH',
      description: 'keep records sharing this field in one split, e.g. meta.doc',
    },
    'skip-invalid': { type: 'boolean', description: 'skip malformed lines (counted and reported)' },
    json: { type: 'boolean', description: 'print the split report as JSON' },
  },
  async run(args) {
    const file = args.positionals[0];
    if (!file) throw new MedloraError('usage: medlora data split FILE --out DIR');
    const ratios = parseRatios(str(args, 'ratios')!);
    const seed = num(args, 'seed')!;
    if (!Number.isInteger(seed) || seed < 0)
      throw new MedloraError(`--seed must be a non-negative integer, got ${seed}`);
    const stratify = str(args, 'stratify')!;
    if (!['task', 'relation', 'none'].includes(stratify))
      throw new MedloraError(`--stratify must be task, relation or none, got "${stratify}"`);
    const { records, report: readReport } = await loadRecords(file, { skipInvalid: bool(args, 'skip-invalid') });
    const group = str(args, 'group');
    const { splits, report } = splitRecords(records, {
      ratios,
      seed,
      stratify: stratify as Stratify,
      ...(group ? { group } : {}),
    });
    const out = str(args, 'out')!;
    mkdirSync(out, { recursive: true });
    const files: string[] = [];
    for (let s = 0; s < splits.length; s++) {
      const f = join(out, `${SPLIT_NAMES[s]}.jsonl`);
      await writeJsonl(f, splits[s]!);
      files.push(f);
    }
    const full = { file, ...report, invalid_lines: readReport.invalid, files };
    writeFileSync(join(out, 'split-report.json'), `${JSON.stringify(full, null, 2)}\n`);
    if (bool(args, 'json')) {
      console.log(JSON.stringify(full));
      return 0;
    }
    console.log(
      `${file}: ${records.length} records, ${report.duplicates_dropped.length} exact duplicates dropped, ${report.units} units (seed ${seed}, stratify ${stratify}${group ? `, group ${group}` : ''})`,
    );
    for (const [name, c] of Object.entries(report.counts))
      console.log(`  ${name.padEnd(10)} ${String(c.total).padStart(7)}  -> ${join(out, `${name}.jsonl`)}`);
    console.log(
      `  report: ${join(out, 'split-report.json')} (counts per class per split); leak check passed (input text${group ? ` and ${group}` : ''})`,
    );
    const inv = invalidSummary(readReport);
    if (inv) console.error(inv);
    return 0;
  },
};

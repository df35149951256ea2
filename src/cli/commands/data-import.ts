// `medlora data import <format> PATH --out FILE.jsonl`: a published corpus -> canonical JSONL records.
import { renameSync, rmSync } from 'node:fs';
import { bool, str, type CommandSpec } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { IMPORTERS, getImporter } from '../../data/import/index.js';
import { newCounts, type ImportOptions } from '../../data/import/common.js';
import { JsonlWriter } from '../../data/jsonl.js';

export const dataImport: CommandSpec = {
  name: 'data import',
  summary:
    'import a corpus (ddi2013, drugbank-sentences, bc5cdr, chemprot, ade-corpus, ade-email, jsonl) into canonical JSONL',
  positionals: '<format> PATH',
  details: `Formats:\n${IMPORTERS.map((i) => `  ${i.format.padEnd(20)}${i.description}`).join('\n')}`,
  options: {
    out: { type: 'string', value: 'FILE.jsonl', description: 'where to write the records', required: true },
    task: {
      type: 'string',
      value: 'TASK',
      description: 'jsonl: the task of the records (default: detected, else qa); bc5cdr: only this task',
    },
    'input-field': {
      type: 'string',
      value: 'NAME',
      description: 'jsonl: the field holding the input text (with --gold-field and --task: any JSONL)',
    },
    'gold-field': {
      type: 'string',
      value: 'NAME',
      description: 'jsonl: the field holding the structured answer (or its JSON text)',
    },
    templates: {
      type: 'string',
      value: 'FILE',
      description:
        'drugbank-sentences: the interaction templates CSV (default: Interaction_information.csv beside PATH)',
    },
    'skip-invalid': {
      type: 'boolean',
      description: 'skip malformed lines / unmatched rows (counted and reported) instead of stopping',
    },
    json: { type: 'boolean', description: 'print the counts as JSON' },
  },
  async run(args) {
    const [format, path, ...rest] = args.positionals;
    if (!format || !path) throw new MedloraError('usage: medlora data import <format> PATH --out FILE.jsonl');
    if (rest.length) throw new MedloraError(`unexpected extra arguments: ${rest.join(' ')}`);
    const imp = getImporter(format);
    const counts = newCounts();
    const invalid: NonNullable<ImportOptions['invalid']> = [];
    const opts: ImportOptions = { skipInvalid: bool(args, 'skip-invalid'), invalid };
    const task = str(args, 'task');
    if (task !== undefined) opts.task = task;
    const inputField = str(args, 'input-field'),
      goldField = str(args, 'gold-field');
    if ((inputField === undefined) !== (goldField === undefined) || (inputField !== undefined && task === undefined)) {
      throw new MedloraError('--input-field and --gold-field go together, with --task');
    }
    if (inputField !== undefined) {
      opts.inputField = inputField;
      opts.goldField = goldField!;
    }
    const tpl = str(args, 'templates');
    if (tpl !== undefined) opts.templates = tpl;
    const out = str(args, 'out')!;
    // write beside the target and rename on success, so a failed import never leaves a half-written FILE.jsonl
    const partial = `${out}.partial`;
    const w = new JsonlWriter(partial);
    try {
      for await (const r of imp.read(path, counts, opts)) await w.write(r);
      await w.close();
    } catch (e) {
      await w.close().catch(() => undefined);
      rmSync(partial, { force: true });
      throw e;
    }
    if (counts.records === 0) {
      rmSync(partial, { force: true });
      throw new MedloraError(`${path}: no records imported (nothing written to ${out})`);
    }
    renameSync(partial, out);
    if (bool(args, 'json')) {
      console.log(JSON.stringify({ format, path, out, ...counts, invalid }));
      return 0;
    }
    console.log(`${format}: ${counts.records} records -> ${out}`);
    for (const [t, n] of Object.entries(counts.byTask)) console.log(`  task ${t}: ${n}`);
    const labels = Object.entries(counts.byLabel).sort((a, b) => b[1] - a[1]);
    for (const [l, n] of labels.slice(0, 20)) console.log(`    ${String(n).padStart(7)}  ${l}`);
    if (labels.length > 20) console.log(`    ... ${labels.length - 20} more (see --json)`);
    for (const [k, v] of Object.entries(counts.notes)) console.log(`  ${k}: ${v}`);
    for (const w2 of counts.warnings.slice(0, 5)) console.error(`warning: ${w2}`);
    if (counts.warnings.length > 5) console.error(`warning: ... ${counts.warnings.length - 5} more`);
    if (invalid.length) {
      console.error(`skipped ${invalid.length} invalid record(s):`);
      for (const x of invalid.slice(0, 5)) console.error(`  ${x.file}${x.line > 0 ? `:${x.line}` : ''}: ${x.error}`);
    }
    return 0;
  },
};

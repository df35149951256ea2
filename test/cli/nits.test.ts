// CLI consistency (issue 11 section 4): errors carry the "medlora <command>: error:" prefix exactly once; `data stats
// --json` prints one JSON document on stdout; `loss` accepts the --overflow its own error suggests; `data import
// ade-email <folder>` skips files that are not record arrays (the recipe's prompt-template.txt) and counts them;
// unknown config keys and options list the closest matches and every known name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { errorLine } from '../../src/cli/main.js';
import { allKeyPaths } from '../../src/train/config.js';
import { trainCommand } from '../../src/cli/commands/train.js';
import { runCli } from '../eval/capture.js';
import { taskRecords, tinyFixture, writeRecords } from '../evalcli/tiny.js';
import type { MedRecord } from '../../src/data/schema.js';

function cli(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'medlora.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('errors: one "medlora <command>: error:" prefix, whatever the message already says', async () => {
  assert.equal(errorLine('eval', 'medlora eval: --dtype must be f32'), 'medlora eval: error: --dtype must be f32');
  assert.equal(errorLine('data import', 'medlora data import: error: x'), 'medlora data import: error: x');
  assert.equal(errorLine('eval', 'record 3: bad'), 'medlora eval: error: record 3: bad');
  const fx = tinyFixture();
  const data = writeRecords('nits-chem.jsonl', taskRecords().chemicals as MedRecord[]);
  for (const args of [
    ['eval', '--model', fx.model, '--data', data, '--dtype', 'f16'],
    ['eval', '--model', fx.model, '--data', data, '--prompt', 'nope'],
    ['extract', 'x', '--model', fx.model, '--task', 'chemicals', '--input', data],
  ]) {
    const r = await runCli(args);
    assert.notEqual(r.code, 0);
    assert.equal(r.err.split('\n').length, 1, r.err);
    assert.equal((r.err.match(/medlora/g) ?? []).length, 1, r.err);
    assert.match(r.err, new RegExp(`^medlora ${args[0]}: error: `));
  }
});

test('data stats --json: stdout is exactly one JSON document (progress is not on stdout)', () => {
  const fx = tinyFixture();
  const data = writeRecords('nits-stats.jsonl', taskRecords()['drug-ae'] as MedRecord[]);
  const r = cli(['data', 'stats', data, '--tokenizer', fx.model, '--json', '--html', join(fx.root, 'nits-stats.html')]);
  assert.equal(r.code, 0, r.err);
  const doc = JSON.parse(r.out) as { lengths: { unit: string } };
  assert.equal(doc.lengths.unit, 'tokens');
  assert.equal(r.out.trim().split('\n').length, 1);
});

test('loss: --overflow drop is accepted (the records that do not fit are counted); error is the default', async () => {
  const fx = tinyFixture();
  const recs = taskRecords().chemicals as MedRecord[];
  const data = writeRecords('nits-loss.jsonl', [
    ...recs,
    { id: 'long', task: 'chemicals', input: 'x', gold: Array.from({ length: 80 }, (_, i) => `chemical number ${i}`) },
  ]);
  const dflt = await runCli(['loss', '--model', fx.model, '--data', data, '--max-length', '300', '--json']);
  assert.equal(dflt.code, 1);
  assert.match(dflt.err, /record long: .* use --overflow drop/);
  const r = await runCli([
    'loss',
    '--model',
    fx.model,
    '--data',
    data,
    '--max-length',
    '300',
    '--overflow',
    'drop',
    '--json',
  ]);
  assert.equal(r.code, 0, r.err);
  assert.equal((JSON.parse(r.out) as { rows: number }).rows, 3);
  assert.match(r.err, /1 record\(s\) dropped/);
  const bad = await runCli(['loss', '--model', fx.model, '--data', data, '--overflow', 'cut']);
  assert.match(bad.err, /^medlora loss: error: --overflow must be error or drop, got "cut"$/);
});

test('data import ade-email FOLDER: prompt-template.txt is skipped and counted; a bad record still fails', async () => {
  const d = mkdtempSync(join(tmpdir(), 'medlora-ade-'));
  mkdirSync(join(d, 'reports'));
  writeFileSync(
    join(d, 'reports', 'Abilify.txt'),
    JSON.stringify([
      { input: 'Abilify gave me nausea.', output: { drug_name: 'Abilify', adverse_events: ['nausea'] } },
    ]),
  );
  writeFileSync(join(d, 'prompt-template.txt'), 'Write an email about {drug} ...\n');
  const out = join(d, 'out.jsonl');
  const r = await runCli(['data', 'import', 'ade-email', d, '--out', out, '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { records: number; notes: Record<string, number>; warnings: string[] };
  assert.equal(j.records, 1);
  assert.equal(j.notes.skipped_files, 1);
  assert.match(j.warnings.join('\n'), /prompt-template\.txt/);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 1);
  writeFileSync(join(d, 'reports', 'Bad.json'), JSON.stringify([{ input: 'x', output: { drug_name: 'A' } }]));
  const bad = await runCli(['data', 'import', 'ade-email', d, '--out', out]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /Bad\.json: element 0: output\.adverse_events must be an array/);
  // a file named on its own must be a record array
  const one = await runCli(['data', 'import', 'ade-email', join(d, 'prompt-template.txt'), '--out', out]);
  assert.match(one.err, /prompt-template\.txt: invalid JSON/);
});

test('unknown config keys and options: closest matches first, then every known name', async () => {
  const r = await runCli([
    'train',
    '--config',
    join(packageRoot(), 'configs', 'ddi-llama31-8b.yaml'),
    '--learning_rat',
    '1e-4',
    '--dry-run',
  ]);
  assert.equal(r.code, 1);
  assert.match(r.err, /unknown config key \(did you mean --learning_rate or --training\.learning_rate\?/);
  // every key is printed as train's flag for it (a flag declared for a key, e.g. --output for output_dir and --device
  // for training.device, else --<key>)
  const declared = new Map(
    Object.entries(trainCommand.options).flatMap(([flag, o]) => (o.field ? [[o.field, `--${flag}`] as const] : [])),
  );
  assert.equal(declared.get('training.device'), '--device');
  for (const k of allKeyPaths()) assert.ok(r.err.includes(declared.get(k) ?? `--${k}`), `missing ${k}`);
  const r2 = await runCli([
    'train',
    '--config',
    join(packageRoot(), 'configs', 'ddi-llama31-8b.yaml'),
    '--zzzz',
    '1',
    '--dry-run',
  ]);
  assert.match(r2.err, /--zzzz: unknown config key \(known: /);
  // a required key missing from the file: the library names the key (model), the CLI its flag
  const noModel = join(mkdtempSync(join(tmpdir(), 'nits-')), 'c.yaml');
  writeFileSync(noModel, 'data:\n  train: t.jsonl\n');
  const r4 = await runCli(['train', '--config', noModel, '--output', join(tmpdir(), 'nits-none'), '--dry-run']);
  assert.equal(r4.code, 1);
  assert.match(r4.err, /--model is required \(Hugging Face checkpoint folder/);
  const r5 = await runCli(['train', '--config', noModel, '--model', 'm', '--output', 'o', '--max_steps', 'ten']);
  assert.match(r5.err, /--training\.max_steps: expected an integer >= -1, got "ten"/);
  assert.ok(r2.err.includes('--training.max_steps') && r2.err.includes('--data.prompt_style'), r2.err);
  const r3 = await runCli(['score', '--task', 'chemicals', '--gold', 'g', '--pred', 'p', '--relax']);
  assert.match(r3.err, /unknown option --relax \(did you mean --relaxed\? known: --task, --gold, /);
  assert.ok(r3.err.includes('--metric'));
});

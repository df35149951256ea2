// Smoke test of `medlora demo` through the real CLI with a tiny budget: it must finish, print the side-by-side table
// and the extractions, and write every documented file; then `--model <its base>` runs steps 3-5 on that checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';

const BIN = join(packageRoot(), 'bin', 'medlora.js');
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 600_000 });

const DOCUMENTED = [
  'data/demo-corpus.jsonl',
  'data/train.jsonl',
  'data/validation.jsonl',
  'data/test.jsonl',
  'data/split-report.json',
  'tokenizer/tokenizer.json',
  'tokenizer/tokenizer_config.json',
  'base/config.json',
  'base/model.safetensors',
  'base/tokenizer.json',
  'base/metrics.jsonl',
  'adapter/adapter_config.json',
  'adapter/adapter_model.safetensors',
  'metrics.jsonl',
  'config.resolved.json',
  'eval/base/predictions.jsonl',
  'eval/fine-tuned/predictions.jsonl',
  'eval/report.html',
  'eval/scores.json',
  'eval/report.json',
  'report.html',
  'demo.json',
];

test('medlora demo --steps 2: the whole pipeline runs, prints the table and writes every documented file', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'medlora-demo-')), 'run');
  const r = run(['demo', '--steps', '2', '--records', '60', '--out', out, '--quiet']);
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  for (const f of DOCUMENTED) assert.ok(existsSync(join(out, f)), `missing ${f}\n${r.stdout}`);
  assert.match(r.stdout, /\[1\/5\] data: 60 DrugBank-style interaction sentences/);
  assert.match(r.stdout, /held-out test\s+base\s+fine-tuned/);
  assert.match(r.stdout, /F1 \(micro\)\s+\d\.\d{3}\s+\d\.\d{3}/);
  assert.match(r.stdout, /\[5\/5\] extractions by the fine-tuned model/);
  assert.match(r.stdout, new RegExp(`Open the report: ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/report\\.html`));
  const summary = JSON.parse(readFileSync(join(out, 'demo.json'), 'utf8')) as {
    scores: Record<string, { f1: number }>;
    data: { test: number };
  };
  assert.deepEqual(Object.keys(summary.scores), ['base', 'fine-tuned']);
  const test = readFileSync(join(out, 'data', 'test.jsonl'), 'utf8')
    .trim()
    .split('\n').length;
  assert.equal(summary.data.test, test);
  const preds = readFileSync(join(out, 'eval', 'fine-tuned', 'predictions.jsonl'), 'utf8')
    .trim()
    .split('\n');
  assert.equal(preds.length, test, 'one prediction per test record');
  // eval/scores.json (medlora eval's format) holds the same numbers as the demo summary
  const scores = JSON.parse(readFileSync(join(out, 'eval', 'scores.json'), 'utf8')) as {
    runs: Array<{ name: string; metrics: { micro: { f1: number } } }>;
  };
  assert.deepEqual(
    scores.runs.map((r) => [r.name, r.metrics.micro.f1]),
    Object.entries(summary.scores).map(([k, v]) => [k, v.f1]),
  );
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /Base vs fine-tuned on the held-out split/);
  assert.match(html, /<svg/);

  // steps 3-5 on an existing checkpoint (the base model folder this run wrote), with JSON events
  const out2 = join(mkdtempSync(join(tmpdir(), 'medlora-demo-model-')), 'run');
  const r2 = run(['demo', '--model', join(out, 'base'), '--steps', '1', '--records', '40', '--out', out2, '--json']);
  assert.equal(r2.status, 0, `exit ${r2.status}\n${r2.stdout}\n${r2.stderr}`);
  const events = r2.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; step?: string });
  assert.ok(events.some((e) => e.event === 'step' && e.step === 'base'));
  assert.equal(events.at(-1)!.event, 'demo');
  assert.ok(!existsSync(join(out2, 'tokenizer')) && existsSync(join(out2, 'adapter', 'adapter_model.safetensors')));
});

test('medlora demo: bad input is one clear line and a non-zero exit', () => {
  const r = run([
    'demo',
    '--model',
    join(tmpdir(), 'no-such-model-dir'),
    '--out',
    join(mkdtempSync(join(tmpdir(), 'medlora-demo-bad-')), 'x'),
  ]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /medlora demo: error: --model .*no config\.json there/);
  const r2 = run(['demo', '--steps', '0']);
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /--steps must be a whole number >= 1, got 0/);
});

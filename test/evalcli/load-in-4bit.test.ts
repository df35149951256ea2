// `medlora eval --load-in-4bit` and `extract --load-in-4bit`: the base's linears are NF4-quantized while loading (as
// QLoRA training holds them), so an 8B QLoRA adapter can be scored in the memory it was trained in. The flag takes
// effect (the quantization line, a test loss that moves a little from the full-precision one) and outputs still parse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setNumThreads } from '../../src/tensor/index.js';
import type { MedRecord } from '../../src/data/schema.js';
import { runCli } from '../eval/capture.js';
import { CHEM_SENTENCE, taskRecords, tinyFixture, tunedEvalArgs, tunedExtractArgs, writeRecords } from './tiny.js';

setNumThreads(1);

test('eval --load-in-4bit quantizes the base while loading and scores over it', async () => {
  const fx = tinyFixture();
  const data = writeRecords('nf4-chem.jsonl', taskRecords().chemicals as MedRecord[]);
  const run = async (out: string, more: string[]): Promise<{ res: Record<string, unknown>; err: string }> => {
    const r = await runCli([
      ...tunedEvalArgs(fx, data, join(fx.root, out)),
      '--limit',
      '2',
      '--max-new-tokens',
      '16',
      '--json',
      ...more,
    ]);
    assert.equal(r.code, 0, r.err);
    return { res: JSON.parse(r.out) as Record<string, unknown>, err: r.err };
  };
  const full = await run('eval-nf4-off', []);
  const nf4 = await run('eval-nf4-on', ['--load-in-4bit']);
  assert.match(nf4.err, /medlora eval: base linears quantized to NF4: \d+ layers, [\d.]+ \w+ -> [\d.]+ \w+/);
  assert.doesNotMatch(full.err, /quantized to NF4/);
  const a = full.res.test_loss as number;
  const b = nf4.res.test_loss as number;
  const rel = Math.abs(a - b) / a;
  console.log(
    `# test loss full precision ${a.toFixed(6)}, NF4 base ${b.toFixed(6)} (relative difference ${rel.toExponential(2)})`,
  );
  // NF4 rounds every base weight (4 bits per weight): the loss moves, but not far
  assert.ok(rel > 1e-6, 'the flag changed nothing');
  assert.ok(rel < 0.2, `NF4 moved the loss by ${(rel * 100).toFixed(1)}%`);
});

test('extract --load-in-4bit: answers that parse over the NF4 base', async () => {
  const fx = tinyFixture();
  const r = await runCli([
    ...tunedExtractArgs(fx, 'chemicals'),
    CHEM_SENTENCE,
    '--max-new-tokens',
    '24',
    '--load-in-4bit',
    '--quiet',
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /medlora extract: base linears quantized to NF4/);
  const line = JSON.parse(r.out.trim().split('\n')[0]!) as Record<string, unknown>;
  assert.ok(line && typeof line === 'object');
});

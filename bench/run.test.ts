// The bench runner's pure parts: option parsing (errors name the option), the summary (best-of per engine, ratio of
// the bests) and the table, on hand-made samples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MedloraError } from '../src/util/errors.js';
import { benchDtype, parseArgs } from './train.js';
import { configLabel, DEFAULT_CONFIGS, renderTable, summarise, type Sample } from './run.js';

test('parseArgs: values, flags, = form; unknown options and bad numbers are errors naming the option', () => {
  const spec = { steps: 'number', config: 'string', json: 'flag' } as const;
  assert.deepEqual(parseArgs(['--steps', '3', '--config=x', '--json'], spec), { steps: 3, config: 'x', json: true });
  assert.throws(
    () => parseArgs(['--step', '3'], spec),
    (e: unknown) => e instanceof MedloraError && /unknown option --step /.test(e.message),
  );
  assert.throws(
    () => parseArgs(['--steps', 'many'], spec),
    (e: unknown) => e instanceof MedloraError && /--steps must be a number/.test(e.message),
  );
  assert.throws(
    () => parseArgs(['--steps'], spec),
    (e: unknown) => e instanceof MedloraError && /--steps needs a value/.test(e.message),
  );
  assert.throws(
    () => benchDtype('fp16'),
    (e: unknown) => e instanceof MedloraError && /bf16 or fp32/.test(e.message),
  );
});

test('summarise: best run per engine and the ratio of the bests', () => {
  const c = DEFAULT_CONFIGS[0]!;
  const label = configLabel(c);
  const s = (engine: Sample['engine'], tok: number): Sample => ({
    engine,
    label,
    step_s: 800 / tok,
    tok_per_s: tok,
    load1: 1,
    detail: { phases: { forward_s: 1, backward_s: 2, optim_s: 0.01 } },
  });
  const rows = summarise([c], [s('medlora', 250), s('hf-peft', 200), s('hf-peft', 278), s('medlora', 300)]);
  // best medlora 300, best HF 278: 300 / 278 = 1.079 -> 1.08
  assert.equal(rows[0]!.ratio, 1.08);
  assert.deepEqual(rows[0]!.medlora, [250, 300]);
  const table = renderTable(rows);
  assert.match(
    table,
    /\| smollm2-135m bf16 2x400 ckpt=0 \| \*\*300\*\* \(250-300, n=2\) \| \*\*278\*\* \(200-278, n=2\) \| 1\.08x \|/,
  );
  // no reference samples: no ratio
  assert.equal(summarise([c], [s('medlora', 250)])[0]!.ratio, null);
});

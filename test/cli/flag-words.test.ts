// The CLI's one translation of library field names into flags (src/cli/flag-words.ts), against the real commands'
// option tables; the library side (errors naming fields) is checked in test/flag-words.test.ts and the areas' tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fieldsToFlags, flagFor, flagWorded } from '../../src/cli/flag-words.js';
import { evalCommand } from '../../src/cli/commands/eval.js';
import { trainCommand } from '../../src/cli/commands/train.js';
import { serveCommand } from '../../src/cli/commands/serve.js';
import { MedloraError } from '../../src/util/errors.js';
import { parseRatios } from '../../src/data/split.js';
import { dataSplit } from '../../src/cli/commands/data-split.js';

test('flagFor: the option table names the flag (by its field, else by its name with - for _)', () => {
  assert.equal(flagFor(evalCommand, 'max_new_tokens'), '--max-new-tokens');
  assert.equal(flagFor(evalCommand, 'batch_size'), '--batch-size');
  assert.equal(flagFor(evalCommand, 'prompt_style'), '--prompt');
  assert.equal(flagFor(evalCommand, 'no_such_field'), undefined);
  assert.equal(flagFor(serveCommand, 'max_batch'), '--max-batch');
  assert.equal(flagFor(trainCommand, 'output_dir'), '--output');
  // train takes config keys as flags: any other field is --key
  assert.equal(flagFor(trainCommand, 'training.max_steps'), '--training.max_steps');
});

test('fieldsToFlags: whole words only; key paths, file names and longer names stay', () => {
  const m = 'max_length 9 (data.max_length in config.json, max_lengths, x-max_length): raise max_length or maxLength';
  assert.equal(
    fieldsToFlags(evalCommand, m, ['max_length']),
    '--max-length 9 (data.max_length in config.json, max_lengths, x-max_length): raise --max-length or --max-length',
  );
  assert.equal(
    fieldsToFlags(trainCommand, 'run R has no config.resolved.json (pass config FILE)', ['config']),
    'run R has no config.resolved.json (pass --config FILE)',
  );
  assert.equal(fieldsToFlags(evalCommand, 'no such field here', ['no_such_field']), 'no such field here');
});

test('flagWorded: a library error about a field is printed with the flag; others are left alone', () => {
  const e = new MedloraError('max_new_tokens 3 is too small for a constrained ade-email answer (needs at least 9)', {
    field: 'max_new_tokens',
  });
  assert.equal(
    flagWorded(evalCommand, e),
    '--max-new-tokens 3 is too small for a constrained ade-email answer (needs at least 9)',
  );
  const r = new MedloraError(
    'output_dir d already holds a run; continue it with resume d, or choose another output_dir',
    {
      field: 'output_dir',
      related: ['resume'],
    },
  );
  assert.equal(
    flagWorded(trainCommand, r),
    '--output d already holds a run; continue it with --resume d, or choose another --output',
  );
  assert.equal(flagWorded(evalCommand, new MedloraError('plain max_new_tokens')), 'plain max_new_tokens');
  assert.equal(flagWorded(evalCommand, new Error('max_new_tokens')), 'max_new_tokens');
  // a real library error, end to end: the library names the field, the CLI the flag
  try {
    parseRatios('0.5,0.4');
    assert.fail('parseRatios accepted ratios that do not sum to 1');
  } catch (err) {
    assert.ok(err instanceof MedloraError);
    assert.equal(err.field, 'ratios');
    assert.match(err.message, /^ratios must sum to 1/);
    assert.match(flagWorded(dataSplit, err), /^--ratios must sum to 1/);
  }
});

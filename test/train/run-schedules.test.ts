// The learning rate of every update for cosine_with_restarts, polynomial and warmup_stable_decay (and linear / cosine)
// against transformers' get_scheduler values (test/fixtures/run-keys/schedules.json, made by make_run_fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { validateConfig, type SchedulerType } from '../../src/train/config.js';
import { learningRateAt } from '../../src/train/schedule.js';

interface Case {
  name: string;
  type: SchedulerType;
  lr: number;
  warmup: number;
  total: number;
  kwargs: Record<string, unknown>;
  lrs: number[];
}
const fixture = JSON.parse(
  readFileSync(join(packageRoot(), 'test', 'fixtures', 'run-keys', 'schedules.json'), 'utf8'),
) as { cases: Case[] };

/** the kwargs as the config resolves them (defaults filled in), so the test goes through the same path as a run */
function resolvedKwargs(c: Case): Record<string, unknown> {
  return validateConfig(
    {
      model: 'm',
      output_dir: 'o',
      data: { train: 't' },
      training: { lr_scheduler_type: c.type, learning_rate: c.lr, lr_scheduler_kwargs: c.kwargs },
    },
    'test',
  ).training.lr_scheduler_kwargs;
}

for (const c of fixture.cases) {
  test(`schedule ${c.name}: every update's rate equals transformers' get_scheduler`, () => {
    const spec = {
      type: c.type,
      learningRate: c.lr,
      warmupSteps: c.warmup,
      totalSteps: c.total,
      kwargs: resolvedKwargs(c),
    };
    const got = c.lrs.map((_, s) => learningRateAt(spec, s));
    let max = 0;
    for (let s = 0; s < got.length; s++) max = Math.max(max, Math.abs(got[s]! - c.lrs[s]!));
    console.log(
      `  ${c.name}: ${got.length} updates, max |medlora - transformers| = ${max.toExponential(2)} (peak ${c.lr})`,
    );
    assert.ok(max <= 1e-12 * c.lr, `max difference ${max}`);
  });
}

test('the checker can fail: a wrong num_cycles moves the rates', () => {
  const c = fixture.cases.find((x) => x.name === 'cosine_with_restarts')!;
  const spec = {
    type: c.type,
    learningRate: c.lr,
    warmupSteps: c.warmup,
    totalSteps: c.total,
    kwargs: { num_cycles: 2 },
  };
  const max = Math.max(...c.lrs.map((v, s) => Math.abs(learningRateAt(spec, s) - v)));
  assert.ok(max > 1e-5, `num_cycles 2 vs 3 should differ, max ${max}`);
});

test('lr_scheduler_kwargs are checked per scheduler, naming the key', () => {
  const cfg = (training: Record<string, unknown>) =>
    validateConfig({ model: 'm', output_dir: 'o', data: { train: 't' }, training }, 'c.yaml').training;
  assert.throws(
    () => cfg({ lr_scheduler_type: 'warmup_stable_decay' }),
    /c\.yaml: training\.lr_scheduler_kwargs\.num_decay_steps is required/,
  );
  assert.throws(
    () => cfg({ lr_scheduler_type: 'polynomial', lr_scheduler_kwargs: { num_cycles: 2 } }),
    /unknown key training\.lr_scheduler_kwargs\.num_cycles for polynomial/,
  );
  assert.throws(
    () => cfg({ lr_scheduler_type: 'linear', lr_scheduler_kwargs: { power: 2 } }),
    /linear takes no options/,
  );
  assert.throws(
    () => cfg({ lr_scheduler_type: 'polynomial', learning_rate: 1e-3, lr_scheduler_kwargs: { lr_end: 1e-2 } }),
    /lr_end \(0\.01\) must be smaller than training\.learning_rate/,
  );
  assert.throws(
    () =>
      cfg({ lr_scheduler_type: 'warmup_stable_decay', lr_scheduler_kwargs: { num_decay_steps: 3, decay_type: 'exp' } }),
    /decay_type must be one of linear, cosine, 1-sqrt/,
  );
  assert.deepEqual(cfg({ lr_scheduler_type: 'polynomial' }).lr_scheduler_kwargs, { lr_end: 1e-7, power: 1 });
});

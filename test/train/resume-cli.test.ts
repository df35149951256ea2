// `medlora train --resume RUN_DIR` alone (no --config, no --model) continues a run from the run folder's
// config.resolved.json and its newest checkpoint: after a Ctrl-C (SIGINT to a real `medlora train` process) the
// printed resume command is run as printed, and after a hard kill (SIGKILL) the run folder alone resumes from the last
// periodic checkpoint. Both end with an adapter byte-identical to an uninterrupted run of the same config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setNumThreads } from '../../src/tensor/index.js';
import type { MedRecord } from '../../src/data/schema.js';
import { packageRoot } from '../../src/util/paths.js';
import { runCli } from '../eval/capture.js';
import { taskRecords, tinyFixture, writeRecords } from '../evalcli/tiny.js';

setNumThreads(1);
const BIN = join(packageRoot(), 'bin', 'medlora.js');
const ENV = { ...process.env, OMP_NUM_THREADS: '1' };

function config(name: string, saveSteps: number): { file: string; run: string } {
  const fx = tinyFixture();
  const data = writeRecords('resume-train.jsonl', [
    ...taskRecords().chemicals,
    ...taskRecords()['drug-ae'],
  ] as MedRecord[]);
  const run = join(fx.root, name);
  const file = join(fx.root, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      model: fx.model,
      output_dir: run,
      data: { train: data },
      lora: { r: 4, lora_alpha: 8, lora_dropout: 0.1 },
      training: {
        max_steps: 8,
        learning_rate: 0.01,
        per_device_train_batch_size: 2,
        save_steps: saveSteps,
        logging_steps: 1,
      },
    }),
  );
  return { file, run };
}

/** Start `medlora train --json`, call `at(step)` on every logged step, resolve with the exit code and stderr. */
function trainProcess(
  args: string[],
  at: (step: number, kill: (sig: NodeJS.Signals) => void) => void,
): Promise<{ code: number | null; signal: string | null; err: string }> {
  const child = spawn(process.execPath, [BIN, 'train', ...args, '--json', '--threads', '1'], { env: ENV });
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  createInterface({ input: child.stdout }).on('line', (l) => {
    const e = JSON.parse(l) as { event: string; step?: number };
    if (e.event === 'metrics' && typeof e.step === 'number' && 'loss' in e) at(e.step, (sig) => child.kill(sig));
  });
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, err })));
}

const adapterBytes = (run: string): Buffer => readFileSync(join(run, 'adapter', 'adapter_model.safetensors'));

test('Ctrl-C, then the printed resume command (run folder alone) finishes the run exactly as an uninterrupted one', async () => {
  const ref = config('resume-ref', 100);
  const r0 = await runCli(['train', '--config', ref.file, '--quiet']);
  assert.equal(r0.code, 0, r0.err);

  const c = config('resume-int', 100);
  let sent = false;
  const first = await trainProcess(['--config', c.file], (step, kill) => {
    if (step >= 2 && !sent) {
      sent = true;
      kill('SIGINT');
    }
  });
  assert.equal(first.code, 130, first.err);
  const m = /Resume with: (medlora train .*)$/m.exec(first.err);
  assert.ok(m, first.err);
  assert.equal(m[1], `medlora train --resume ${c.run}`);
  assert.equal(existsSync(join(c.run, 'adapter')), false);
  // run the printed command as printed (medlora = bin/medlora.js); --threads is an engine setting, not part of the
  // run's config: the byte-for-byte comparison needs the reference's thread count (reductions differ with it)
  const words = m[1]!.split(' ').slice(2);
  const second = spawnSync(process.execPath, [BIN, 'train', ...words, '--quiet', '--threads', '1'], {
    encoding: 'utf8',
    env: ENV,
  });
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stderr, /resumed from .*checkpoint-\d+ at step \d+/);
  assert.ok(
    adapterBytes(c.run).equals(adapterBytes(ref.run)),
    'the resumed adapter differs from the uninterrupted run',
  );
});

test('hard kill: --resume RUN_DIR continues from the newest periodic checkpoint; a checkpoint folder works too', async () => {
  const ref = join(tinyFixture().root, 'resume-ref');
  if (!existsSync(join(ref, 'adapter'))) {
    const r0 = await runCli(['train', '--config', config('resume-ref', 100).file, '--quiet']);
    assert.equal(r0.code, 0, r0.err);
  }
  const c = config('resume-kill', 2);
  let sent = false;
  const first = await trainProcess(['--config', c.file], (step, kill) => {
    if (step >= 5 && !sent && existsSync(join(c.run, 'checkpoint-4'))) {
      sent = true;
      kill('SIGKILL');
    }
  });
  assert.equal(first.signal, 'SIGKILL', first.err);
  const r = await runCli(['train', '--resume', c.run, '--quiet']);
  assert.equal(r.code, 0, r.err);
  const steps = readFileSync(join(c.run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step: number; loss?: number })
    .filter((x) => x.loss !== undefined)
    .map((x) => x.step);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.ok(adapterBytes(c.run).equals(adapterBytes(ref)), 'the resumed adapter differs from the uninterrupted run');
  // a checkpoint folder alone resumes too (its run folder's config); a folder that is neither is one clear error
  const again = await runCli(['train', '--resume', join(c.run, 'checkpoint-2'), '--quiet']);
  assert.equal(again.code, 0, again.err);
  assert.ok(adapterBytes(c.run).equals(adapterBytes(ref)));
  const bad = await runCli(['train', '--resume', tinyFixture().model]);
  assert.match(
    bad.err,
    /^medlora train: error: --resume .*: neither a run folder \(no config\.resolved\.json\) nor a checkpoint folder/,
  );
  const none = await runCli(['train', '--resume', 'latest']);
  assert.match(none.err, /--resume latest needs --config FILE \(or give the run folder: --resume RUN_DIR\)/);
});

// 12 training steps per method through `medlora train`'s runTraining (config finetuning: dora / adapter_v2, starting
// from the fixture adapter) against the trajectories test/fixtures/make_methods.py computed with torch AdamW and the HF
// linear schedule (PEFT's DoRA; the independent PyTorch Adapter-V2); and resume from a checkpoint is exact. The
// trajectories train on MEDLORA_TEST_DEVICE (training.device, test/device.ts); the resume test stays on the CPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { compareClose } from '../../src/util/close.js';
import { resolveConfig } from '../../src/train/config.js';
import { runTraining } from '../../src/train/run.js';
import { REFERENCE_FOLDERS, refDir, skipNoShared } from '../model/fixtures.js';
import { referenceTraining, trajectoryTolerances, writeBatchJsonl } from '../train/reference-run.js';
import { cpuOnly, onDevice, TEST_DEVICE } from '../device.js';

const FIX = join(packageRoot(), 'test', 'fixtures', 'methods');
interface Traj {
  train_loss: number[];
  learning_rate: number[];
  grad_norm: number[];
  lr: number;
  warmup_steps: number;
  max_steps: number;
  weight_decay: number;
  max_grad_norm: number;
}
interface Rec {
  step: number;
  loss?: number;
  learning_rate?: number;
  grad_norm?: number;
}

function run(
  name: string,
  method: 'dora' | 'adapter_v2',
  dir: string,
  extra: Array<[string, string]> = [],
): ReturnType<typeof resolveConfig> {
  const t = (JSON.parse(readFileSync(join(FIX, name, 'expected.json'), 'utf8')) as Record<string, Traj>)[
    `train_${method}`
  ]!;
  const batch = JSON.parse(readFileSync(join(refDir(name), 'batch.json'), 'utf8')) as {
    input_ids: number[][];
    labels: number[][];
  };
  writeBatchJsonl(join(dir, 'train.jsonl'), batch);
  const section = method === 'dora' ? 'lora' : 'adapter_v2';
  return resolveConfig(
    {
      model: refDir(name),
      output_dir: join(dir, 'run'),
      finetuning: method,
      data: { train: join(dir, 'train.jsonl') },
      [section]: { init_adapter: join(FIX, name, method) },
      // training.device: the test device (test/device.ts; cpu by default)
      training: referenceTraining(t, 2, { save_steps: null, device: TEST_DEVICE }),
    },
    extra,
    'methods-train',
  );
}
function metrics(dir: string): Rec[] {
  return readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Rec)
    .filter((r) => r.loss !== undefined);
}

const summary: string[] = [];
test.after(() => {
  if (summary.length) console.log(`12-step trajectories, max |diff|:\n  ${summary.join('\n  ')}`);
});

// CI time: Linear f32, GPT-2 Conv1D and bf16 by default (every folder passes too: MEDLORA_ALL_FIXTURES=1; measured
// within 1.1e-6 on the loss for all F32 folders)
const FOLDERS =
  process.env.MEDLORA_ALL_FIXTURES === '1'
    ? REFERENCE_FOLDERS
    : (['llama-tiny', 'gpt2-tiny', 'llama-tiny-bf16'] as const);
for (const name of FOLDERS) {
  for (const method of ['dora', 'adapter_v2'] as const) {
    test(
      `${name}: 12 ${method} steps through medlora train match the reference trajectory`,
      { skip: skipNoShared },
      async () => {
        const dir = mkdtempSync(join(tmpdir(), `medlora-${method}-`));
        try {
          const cfg = run(name, method, dir);
          assert.equal(cfg.finetuning, method);
          await runTraining(cfg, { quiet: true });
          const t = (JSON.parse(readFileSync(join(FIX, name, 'expected.json'), 'utf8')) as Record<string, Traj>)[
            `train_${method}`
          ]!;
          const recs = metrics(dir);
          assert.deepEqual(
            recs.map((r) => r.step),
            Array.from({ length: 12 }, (_, i) => i + 1),
          );
          // README: 12-step train_loss within 1e-3 (F32) / 1e-2 (bf16); gradient norms 1e-4 / 1e-1 relative
          const tol = trajectoryTolerances(name);
          const l = compareClose(
            recs.map((r) => r.loss!),
            t.train_loss,
            { atol: tol.loss, label: onDevice(`${name} ${method} train_loss`) },
          );
          const lr = compareClose(
            recs.map((r) => r.learning_rate!),
            t.learning_rate,
            { atol: 1e-12, label: onDevice(`${name} ${method} learning_rate`) },
          );
          const g = compareClose(
            recs.map((r) => r.grad_norm!),
            t.grad_norm,
            { rtolMaxAbs: tol.gradNorm, label: onDevice(`${name} ${method} grad_norm`) },
          );
          summary.push(
            `${onDevice(`${name} ${method}`)}: loss ${l.maxAbsDiff.toExponential(2)}, grad_norm ${g.maxAbsDiff.toExponential(2)}`,
          );
          for (const r of [l, lr, g]) assert.ok(r.ok, r.message);
          // the run's adapter is the method's file format
          const ac = JSON.parse(readFileSync(join(dir, 'run', 'adapter', 'adapter_config.json'), 'utf8')) as Record<
            string,
            unknown
          >;
          assert.ok(method === 'dora' ? ac.use_dora === true : ac.peft_type === 'ADAPTER_V2', JSON.stringify(ac));
          // and its model card names the method (PEFT cannot load Adapter-V2: the card must not say it can)
          const card = readFileSync(join(dir, 'run', 'adapter', 'README.md'), 'utf8');
          assert.match(
            card,
            method === 'dora'
              ? /A DoRA adapter \(PEFT format\)/
              : /A LLaMA-Adapter V2 adapter \(medlora's ADAPTER_V2 format/,
          );
          if (method === 'adapter_v2') assert.doesNotMatch(card, /PeftModel/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  }
}

for (const method of ['dora', 'adapter_v2'] as const) {
  test(
    `${method}: stopping after a checkpoint and resuming gives exactly the uninterrupted losses`,
    { skip: skipNoShared || cpuOnly },
    async () => {
      const a = mkdtempSync(join(tmpdir(), 'medlora-full-')),
        b = mkdtempSync(join(tmpdir(), 'medlora-resume-'));
      try {
        await runTraining(run('qwen2-tiny', method, a, [['save_steps', '5']]), { quiet: true });
        const cfgB = run('qwen2-tiny', method, b, [['save_steps', '5']]);
        await runTraining(cfgB, { quiet: true, haltAfterStep: 7 });
        await runTraining(cfgB, { quiet: true, resume: 'latest' });
        const full = metrics(a);
        const byStep = new Map<number, number>();
        for (const r of metrics(b)) byStep.set(r.step, r.loss!); // the resumed run's value wins for steps 6-7
        assert.deepEqual(
          [...byStep.keys()].sort((x, y) => x - y),
          full.map((r) => r.step),
        );
        assert.deepEqual(
          full.map((r) => byStep.get(r.step)),
          full.map((r) => r.loss),
          'bit-identical losses after resume',
        );
      } finally {
        rmSync(a, { recursive: true, force: true });
        rmSync(b, { recursive: true, force: true });
      }
    },
  );
}

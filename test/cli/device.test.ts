// `--device` on eval, extract, serve, generate and loss (src/cli/device.ts): --device cpu computes exactly as the
// default does on a CPU-only machine (and eval's scores.json, serve's listening line and /health say cpu); a device
// this addon or machine cannot provide is one error line naming --device and a non-zero exit, before anything loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cudaDeviceCount, engineInfo, resolveDevice, setNumThreads } from '../../src/tensor/index.js';
import type { MedRecord } from '../../src/data/schema.js';
import { runCli } from '../eval/capture.js';
import {
  CHEM_SENTENCE,
  taskRecords,
  tinyFixture,
  tunedEvalArgs,
  tunedExtractArgs,
  writeRecords,
} from '../evalcli/tiny.js';

setNumThreads(1);

const BIN = fileURLToPath(new URL('../../../bin/medlora.js', import.meta.url));
const autoIsCpu = resolveDevice('auto', { what: 'auto' }).device === 'cpu';
const SKIP_AUTO = autoIsCpu ? false : 'auto picks a CUDA device here: the default is not the CPU';
const hasCuda = engineInfo().compiledWithCuda && cudaDeviceCount() > 0;
const SKIP_CUDA = hasCuda ? `this addon has CUDA and ${cudaDeviceCount()} device(s) are visible` : false;
/** What --device cuda says here: the addon has no CUDA, or it has and no device is visible. */
const noCuda = (spec: string): RegExp =>
  engineInfo().compiledWithCuda
    ? new RegExp(`--device ${spec}: no CUDA GPU is visible`)
    : new RegExp(
        `--device ${spec}: this medlora addon was built against a CPU-only libtorch; rebuild it against a CUDA PyTorch .* or use cpu$`,
        'm',
      );

/** `cmd args` with and without --device cpu: both succeed with the same stdout, and cpu adds no note. */
async function sameWithCpu(args: string[]): Promise<string> {
  const plain = await runCli(args);
  const cpu = await runCli([...args, '--device', 'cpu']);
  assert.equal(plain.code, 0, plain.err);
  assert.equal(cpu.code, 0, cpu.err);
  assert.ok(cpu.out.trim().length > 0, `${args[0]} printed something`);
  assert.equal(cpu.out, plain.out, `${args[0]} --device cpu`);
  assert.doesNotMatch(cpu.err, /note: --device/);
  return cpu.out;
}

test('generate, loss, extract: --device cpu prints what the default prints', { skip: SKIP_AUTO }, async () => {
  const fx = tinyFixture();
  await sameWithCpu(['generate', '--model', fx.model, '--prompt', 'Aspirin and', '--max-new-tokens', '8', '--json']);
  const rows = join(fx.root, 'device-rows.jsonl');
  writeFileSync(
    rows,
    [
      { input_ids: [1, 40, 41, 42, 43, 44], labels: [-100, -100, 41, 42, 43, 44] },
      { input_ids: [1, 50, 51, 52], labels: [1, 50, 51, 52] },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n'),
  );
  const loss = await sameWithCpu(['loss', '--model', fx.model, '--adapter', fx.adapter, '--data', rows, '--json']);
  assert.ok(Number.isFinite((JSON.parse(loss) as { loss: number }).loss));
  await sameWithCpu([...tunedExtractArgs(fx, 'chemicals'), CHEM_SENTENCE, '--max-new-tokens', '24', '--quiet']);
});

test(
  'eval --device cpu: the same scores and predictions as the default; scores.json says device cpu',
  { skip: SKIP_AUTO },
  async () => {
    const fx = tinyFixture();
    const data = writeRecords('device-chem.jsonl', taskRecords().chemicals as MedRecord[]);
    const run = async (out: string, more: string[]): Promise<Record<string, unknown>> => {
      const r = await runCli([
        ...tunedEvalArgs(fx, data, out),
        '--limit',
        '2',
        '--max-new-tokens',
        '24',
        '--json',
        ...more,
      ]);
      assert.equal(r.code, 0, r.err);
      return JSON.parse(r.out) as Record<string, unknown>;
    };
    const outPlain = join(fx.root, 'eval-device-default');
    const outCpu = join(fx.root, 'eval-device-cpu');
    const plain = await run(outPlain, []);
    const cpu = await run(outCpu, ['--device', 'cpu']);
    assert.equal(cpu.device, 'cpu');
    assert.equal(plain.device, 'cpu');
    assert.ok(typeof cpu.test_loss === 'number');
    const { timing: _a, ...a } = plain;
    const { timing: _b, ...b } = cpu;
    assert.deepEqual(b, a);
    const preds = (dir: string): string => readFileSync(join(dir, 'predictions.jsonl'), 'utf8');
    assert.equal(preds(outCpu), preds(outPlain));
    assert.match(readFileSync(join(outCpu, 'report.html'), 'utf8'), / on cpu; /);
  },
);

/** Start `medlora serve ... --json` and wait for its listening line. */
async function listening(args: string[]): Promise<{ line: Record<string, unknown>; stop: () => Promise<number> }> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exit = new Promise<number>((r) => child.on('exit', (code) => r(code ?? -1)));
  const rl = createInterface({ input: child.stdout });
  const line = await new Promise<Record<string, unknown>>((res, rej) => {
    rl.once('line', (l) => res(JSON.parse(l) as Record<string, unknown>));
    void exit.then((c) => rej(new Error(`serve exited (${c}) before listening: ${err}`)));
  });
  return {
    line,
    stop: async () => {
      child.kill('SIGTERM');
      return exit;
    },
  };
}

test(
  "serve --device cpu: listening line and /health say cpu; answers equal the default server's",
  { skip: SKIP_AUTO, timeout: 120_000 },
  async () => {
    const fx = tinyFixture();
    const args = ['--model', fx.model, '--adapter', fx.adapter, '--port', '0', '--json', '--threads', '1'];
    const ask = async (url: string, model: string): Promise<unknown> => {
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ model, prompt: 'After starting Abilify I had nausea.', max_tokens: 12, temperature: 0 }),
      });
      assert.equal(r.status, 200, await r.clone().text());
      return ((await r.json()) as { choices: Array<{ text: string }> }).choices[0]!.text;
    };
    const answers: unknown[] = [];
    for (const more of [[], ['--device', 'cpu']]) {
      const s = await listening([...args, ...more]);
      try {
        assert.equal(s.line.event, 'listening');
        assert.equal(s.line.device, 'cpu');
        const url = String(s.line.url);
        const health = (await (await fetch(`${url}/health`)).json()) as Record<string, unknown>;
        assert.equal(health.device, 'cpu');
        answers.push(await ask(url, String((s.line.models as string[])[0])));
      } finally {
        assert.equal(await s.stop(), 0);
      }
    }
    assert.ok(typeof answers[0] === 'string' && answers[0].length > 0);
    assert.equal(answers[1], answers[0]);
  },
);

test(
  '--device cuda / cuda:N without a usable CUDA device, or a bad word: one line naming --device, non-zero exit, nothing loaded',
  { skip: SKIP_CUDA },
  async () => {
    // a model folder that does not exist: the device is refused before anything is read
    const none = '/nonexistent/medlora-model';
    const cases: Array<[string[], string]> = [
      [['eval', '--model', none, '--data', '/nonexistent/test.jsonl'], 'cuda'],
      [['extract', '--model', none, '--task', 'chemicals', 'some text'], 'cuda:0'],
      [['serve', '--model', none], 'cuda'],
      [['generate', '--model', none, '--ids', '1,2'], 'cuda:1'],
      [['loss', '--model', none, '--data', '/nonexistent/rows.jsonl'], 'cuda'],
    ];
    for (const [args, spec] of cases) {
      const r = await runCli([...args, '--device', spec]);
      assert.equal(r.code, 1, `${args[0]}: ${r.err}`);
      assert.equal(r.out, '');
      const lines = r.err.split('\n');
      assert.equal(lines.length, 1, r.err);
      assert.match(lines[0]!, new RegExp(`^medlora ${args[0]}: error: ${noCuda(spec).source}`));
    }
    const bad = await runCli(['generate', '--model', none, '--ids', '1', '--device', 'gpu']);
    assert.equal(bad.code, 1);
    assert.equal(bad.err, 'medlora generate: error: --device: expected auto, cpu, cuda or cuda:N, got "gpu"');
    // the real process: exit status and stderr (no stack trace)
    const p = spawnSync(process.execPath, [BIN, 'serve', '--model', none, '--device', 'cuda'], { encoding: 'utf8' });
    assert.equal(p.status, 1, p.stderr);
    assert.match(p.stderr, noCuda('cuda'));
    assert.ok(!p.stderr.includes('    at '), `no stack trace expected:\n${p.stderr}`);
    assert.equal(p.stderr.trim().split('\n').length, 1, p.stderr);
  },
);

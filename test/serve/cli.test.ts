// `medlora serve` as a real process (bin/medlora.js): --json lines, a request over loopback, SIGTERM while a request is
// in flight (it is answered, then exit 0), and startup errors (one clear line, non-zero exit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../eval/capture.js';
import { tinyFixture } from '../evalcli/tiny.js';
import { manualSeed, noGrad, randn, scope, setNumThreads } from '../../src/tensor/index.js';
import { loadModel } from '../../src/model/load.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { generate } from '../../src/generate/generate.js';
import { loadAnyAdapter, methodNamed } from '../../src/adapt/methods/index.js';
import { quantizeModel } from '../../src/adapt/nf4-linear.js';

const BIN = fileURLToPath(new URL('../../../bin/medlora.js', import.meta.url));

interface Proc {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  next: () => Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
  stderr: () => string;
}

function start(args: string[], more: string[] = []): Proc {
  const child = spawn(process.execPath, [BIN, 'serve', ...args, ...more], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<(l: Record<string, unknown>) => void> = [];
  let read = 0;
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(JSON.parse(l) as Record<string, unknown>);
    waiters.shift()?.(lines[read++]!);
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    child,
    lines,
    exit,
    stderr: () => err,
    next: () =>
      read < lines.length
        ? Promise.resolve(lines[read++]!)
        : new Promise((r, j) => {
            waiters.push(r);
            void exit.then((c) => j(new Error(`serve exited (${c}) before printing a line: ${err}`)));
          }),
  };
}

test(
  'medlora serve --json: listening line, answers, SIGTERM finishes the in-flight request and exits 0',
  { timeout: 120_000 },
  async () => {
    const fx = tinyFixture();
    const p = start([
      '--model',
      fx.model,
      '--adapter',
      fx.adapter,
      '--port',
      '0',
      '--json',
      '--task',
      'chemicals',
      '--task',
      'drug-ae',
      '--max-new-tokens',
      '48',
      '--threads',
      '1',
    ]);
    try {
      const l = await p.next();
      assert.equal(l.event, 'listening');
      assert.match(String(l.url), /^http:\/\/127\.0\.0\.1:\d+$/);
      const url = String(l.url);
      const h = (await (await fetch(`${url}/health`)).json()) as Record<string, unknown>;
      assert.equal(h.model, 'model');
      assert.equal(h.adapter, 'run/adapter');
      assert.deepEqual(h.tasks, ['chemicals', 'drug-ae']);
      assert.equal((await p.next()).path, '/health');
      const bad = await fetch(`${url}/v1/extract`, {
        method: 'POST',
        body: JSON.stringify({ task: 'diseases', text: 'x' }),
      });
      assert.equal(bad.status, 400);
      assert.match(
        ((await bad.json()) as { error: { message: string } }).error.message,
        /this server serves: chemicals, drug-ae/,
      );
      const logged = await p.next();
      assert.equal(logged.status, 400);
      // a request, then SIGTERM as soon as the server has logged nothing more: it must still be answered
      const inflight = fetch(`${url}/v1/extract`, {
        method: 'POST',
        body: JSON.stringify({
          task: 'drug-ae',
          texts: ['Amiodarone caused pulmonary fibrosis.', 'The patient recovered.'],
        }),
      });
      await new Promise((r) => setTimeout(r, 150));
      p.child.kill('SIGTERM');
      const res = await inflight;
      assert.equal(res.status, 200);
      const body = (await res.json()) as { results: Array<{ parsed: boolean }> };
      assert.deepEqual(
        body.results.map((x) => x.parsed),
        [true, true],
      );
      assert.equal(await p.exit, 0, p.stderr());
      const stopped = p.lines.at(-1)!;
      assert.equal(stopped.event, 'stopped');
      assert.equal(stopped.signal, 'SIGTERM');
      assert.equal(stopped.extract_requests, 2);
      assert.equal(stopped.texts, 2);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  },
);

/** A DoRA adapter over the tiny model with random (non-zero) tensors. */
function doraAdapter(): string {
  const fx = tinyFixture();
  const dir = join(fx.root, 'dora', 'adapter');
  const m = loadModel(fx.model);
  methodNamed('dora').apply(m, { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] } as never);
  manualSeed(9);
  noGrad(() => {
    for (const [, p] of m.trainableParameters()) {
      const r = scope(() => randn(p.shape).mul(0.3));
      p.add_(r);
      r.dispose();
    }
  });
  methodNamed('dora').save(m, dir, { base_model_name_or_path: fx.model });
  m.dispose();
  return dir;
}

test(
  'medlora serve with several adapters over one shared base (LoRA twice, DoRA): each answers as the adapter loaded alone; the base as the plain base',
  { timeout: 120_000 },
  async () => {
    setNumThreads(1);
    const fx = tinyFixture();
    const dora = doraAdapter();
    const p = start(
      ['--model', fx.model, '--adapter', `a=${fx.adapter}`, '--adapter', `a2=${fx.adapter}`, '--adapter', `d=${dora}`],
      ['--port', '0', '--json', '--threads', '1', '--base-name', 'tiny-base', '--max-new-tokens', '16'],
    );
    const tok = loadTokenizer(fx.model);
    const prompt = 'After starting Abilify I had nausea.';
    const want = (dir: string | null): string => {
      const m = loadModel(fx.model);
      try {
        if (dir) loadAnyAdapter(m, dir);
        return generate(m, tok, [prompt], { maxNewTokens: 12 })[0]!.text;
      } finally {
        m.dispose();
      }
    };
    try {
      const l = await p.next();
      assert.equal(l.event, 'listening', p.stderr());
      assert.deepEqual(l.models, ['a', 'a2', 'd', 'tiny-base']);
      const url = String(l.url);
      const health = (await (await fetch(`${url}/health`)).json()) as {
        models: Array<{ name: string; own_weights_mb: number }>;
      };
      const own = Object.fromEntries(health.models.map((m) => [m.name, m.own_weights_mb]));
      console.log(`own weights (MB): ${JSON.stringify(own)}`);
      for (const n of ['a', 'a2', 'd'])
        assert.ok(own[n]! < 0.2 * own['tiny-base']!, `${n} holds only its adapter tensors, not a base copy`);
      const got: Record<string, string> = {};
      for (const model of ['a', 'a2', 'd', 'tiny-base']) {
        const r = await fetch(`${url}/v1/completions`, {
          method: 'POST',
          body: JSON.stringify({ model, prompt, max_tokens: 12, temperature: 0 }),
        });
        assert.equal(r.status, 200, model);
        got[model] = ((await r.json()) as { choices: Array<{ text: string }> }).choices[0]!.text;
      }
      const wantA = want(fx.adapter);
      assert.equal(got.a, wantA);
      assert.equal(got.a2, wantA);
      assert.equal(got.d, want(dora));
      assert.equal(got['tiny-base'], want(null));
      assert.notEqual(got.d, got['tiny-base'], 'the adapters change the answer (the check can fail)');
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  },
);

test(
  'medlora serve --load-in-4bit: the NF4 base and an adapter over it (named, and the single --adapter form) answer as the quantized base + adapter in-process',
  { timeout: 120_000 },
  async () => {
    setNumThreads(1);
    const fx = tinyFixture();
    const tok = loadTokenizer(fx.model);
    const prompt = 'Lipitor gave me muscle pain.';
    const want = (dir: string | null): string => {
      const m = loadModel(fx.model);
      try {
        quantizeModel(m, { skip: ['lm_head'] });
        if (dir) loadAnyAdapter(m, dir);
        return generate(m, tok, [prompt], { maxNewTokens: 12 })[0]!.text;
      } finally {
        m.dispose();
      }
    };
    const ask = async (url: string, model: string): Promise<string> => {
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ model, prompt, max_tokens: 12, temperature: 0 }),
      });
      const j = (await r.json()) as { choices: Array<{ text: string }> };
      assert.equal(r.status, 200, JSON.stringify(j));
      return j.choices[0]!.text;
    };
    for (const form of [
      ['--adapter', `a=${fx.adapter}`, '--base-name', 'b4'],
      ['--adapter', fx.adapter],
    ]) {
      const p = start(['--model', fx.model, ...form, '--load-in-4bit', '--port', '0', '--json', '--threads', '1']);
      try {
        const l = await p.next();
        assert.equal(l.event, 'listening', p.stderr());
        assert.match(p.stderr(), /base linears quantized to NF4: \d+ layers/);
        const url = String(l.url);
        const wantA = want(fx.adapter);
        if (form[1]!.startsWith('a=')) {
          assert.equal(await ask(url, 'a'), wantA);
          assert.equal(await ask(url, 'b4'), want(null));
        } else assert.equal(await ask(url, 'model'), wantA);
        p.child.kill('SIGTERM');
        assert.equal(await p.exit, 0, p.stderr());
      } finally {
        if (p.child.exitCode === null) p.child.kill('SIGKILL');
      }
    }
  },
);

test(
  'medlora serve --api-key-file: the first line is the key (/v1 routes answer 401 without it); a readable-by-others file is warned about',
  { timeout: 60_000 },
  async () => {
    const fx = tinyFixture();
    const file = join(fx.root, 'serve-key');
    writeFileSync(file, 'sk-file-key-1\n');
    chmodSync(file, 0o644);
    const p = start(['--model', fx.model, '--api-key-file', file, '--port', '0', '--json', '--threads', '1']);
    try {
      const l = await p.next();
      assert.equal(l.event, 'listening', p.stderr());
      assert.match(p.stderr(), /--api-key-file .*serve-key can be read by other users.*chmod 600/);
      const url = String(l.url);
      assert.equal((await fetch(`${url}/v1/models`)).status, 401);
      assert.equal(
        (await fetch(`${url}/v1/models`, { headers: { Authorization: 'Bearer sk-file-key-2' } })).status,
        401,
      );
      assert.equal(
        (await fetch(`${url}/v1/models`, { headers: { Authorization: 'Bearer sk-file-key-1' } })).status,
        200,
      );
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0, p.stderr());
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  },
);

test('medlora serve startup errors: one clear line, non-zero exit', async () => {
  const fx = tinyFixture();
  writeFileSync(join(fx.root, 'empty-key'), '\n');
  const cases: Array<[string[], RegExp]> = [
    [['--model', fx.model, '--task', 'qa'], /"qa" is not a structured extraction task/],
    [['--model', fx.model, '--port', '70000'], /--port must be 0\.\.65535, got 70000/],
    [['--model', fx.model, '--max-batch', '0'], /--max-batch must be a positive integer, got 0/],
    [['--model', fx.model, '--prompt', 'xml'], /--prompt must be alpaca or chat/],
    [['--model', `${fx.root}/nowhere`], /no config\.json/],
    [['--model', fx.model, '--adapter', `${fx.root}/nowhere`], /nowhere/],
    [['--model', fx.model, '--api-key-file', `${fx.root}/no-key`], /--api-key-file .*no-key: cannot read it/],
    [
      ['--model', fx.model, '--api-key-file', `${fx.root}/empty-key`],
      /--api-key-file .*empty-key: the first line is empty/,
    ],
    [['--model', fx.model, '--api-key-file', 'f', '--api-key-env', 'V'], /--api-key-env or --api-key-file, not both/],
    [
      ['--model', fx.model, '--adapter', `a=${fx.adapter}`, '--adapter', `x=${fx.root}/nowhere`],
      /--adapter x: .*nowhere/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(['serve', ...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.err, re, args.join(' '));
  }
});

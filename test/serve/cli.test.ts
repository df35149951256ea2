// `medlora serve` as a real process (bin/medlora.js): --json lines, a request over loopback, SIGTERM while a request is
// in flight (it is answered, then exit 0), and startup errors (one clear line, non-zero exit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runCli } from '../eval/capture.js';
import { tinyFixture } from '../evalcli/tiny.js';

const BIN = fileURLToPath(new URL('../../../bin/medlora.js', import.meta.url));

interface Proc {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  next: () => Promise<Record<string, unknown>>;
  exit: Promise<number | null>;
  stderr: () => string;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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

test('medlora serve startup errors: one clear line, non-zero exit', async () => {
  const fx = tinyFixture();
  const cases: Array<[string[], RegExp]> = [
    [['--model', fx.model, '--task', 'qa'], /"qa" is not a structured extraction task/],
    [['--model', fx.model, '--port', '70000'], /--port must be 0\.\.65535, got 70000/],
    [['--model', fx.model, '--max-batch', '0'], /--max-batch must be a positive integer, got 0/],
    [['--model', fx.model, '--prompt', 'xml'], /--prompt must be alpaca or chat/],
    [['--model', `${fx.root}/nowhere`], /no config\.json/],
    [['--model', fx.model, '--adapter', `${fx.root}/nowhere`], /nowhere/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(['serve', ...args]);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.err, re, args.join(' '));
  }
});

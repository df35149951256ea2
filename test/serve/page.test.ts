// The web page in a real browser (headless chromium, loopback only): the form pre-filled from the query and
// submitted, the result table, the highlighted source text and the raw JSON rendered; a screenshot is written to
// $MEDLORA_SCREENSHOT_DIR (default: a temp folder). Skipped with a message when chromium is not installed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../src/tensor/index.js';
import { loadExtractor } from '../../src/infer/load-extractor.js';
import { createServer, taskInfos } from '../../src/serve/index.js';
import { pageHtml } from '../../src/serve/page.js';
import { tinyFixture } from '../evalcli/tiny.js';
import { loadModel } from '../../src/model/load.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { loadAdapterShared } from '../../src/adapt/methods/index.js';

setNumThreads(1);
const CHROMIUM = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
  (p) => p && existsSync(p),
);
const skip = CHROMIUM ? false : 'chromium not installed (apt-get install -y chromium)';
const outDir = process.env.MEDLORA_SCREENSHOT_DIR ?? mkdtempSync(join(tmpdir(), 'medlora-page-'));
mkdirSync(outDir, { recursive: true });
const profiles: string[] = [];
after(() => {
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
});

/** Run headless chromium on `url` (asynchronously: the server answering it lives in this process). */
function chromium(url: string, mode: { screenshot: string } | 'dom'): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), 'medlora-chromium-'));
  profiles.push(profile);
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    `--user-data-dir=${profile}`,
    '--window-size=1100,1300',
    '--virtual-time-budget=20000',
    ...(mode === 'dom' ? ['--dump-dom'] : [`--screenshot=${mode.screenshot}`]),
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM!, args, { timeout: 90_000, maxBuffer: 16 << 20 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
}

test(
  'page against a canned answer: table rows, spans highlighted at the right code points, raw JSON',
  { skip, timeout: 120_000 },
  async () => {
    // hand-written answer: "💊 Aspirin may increase ... of warfarin." - the emoji is one code point (two UTF-16 units),
    // so "Aspirin" is code points [2, 9) and "warfarin" [55, 63) (counted by hand: 2 + 53 characters before it)
    const input = '💊 Aspirin may increase the anticoagulant activities of warfarin.';
    assert.equal(Array.from(input).slice(2, 9).join(''), 'Aspirin');
    assert.equal(Array.from(input).slice(55, 63).join(''), 'warfarin');
    const answer = {
      results: [
        {
          task: 'ddi-triplets',
          input,
          result: [{ head: 'aspirin', relation: 'may increase the anticoagulant activities of', tail: 'warfarin' }],
          entities: [
            { text: 'aspirin', role: 'drug', spans: [[2, 9]] },
            { text: 'warfarin', role: 'drug', spans: [[55, 63]] },
          ],
          raw: '<aspirin, may increase the anticoagulant activities of, warfarin>',
          parsed: true,
          unparsed: [],
          finish_reason: 'eos',
        },
      ],
      model: 'canned',
      adapter: null,
      elapsed_ms: 1,
    };
    const srv = createHttpServer((req, res) => {
      if (req.url?.startsWith('/v1/extract')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(answer));
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(
        pageHtml(taskInfos(), 'n0nce', { model: 'canned', adapter: null }).replace(
          '<script nonce="n0nce">',
          '<script>',
        ),
      );
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/?task=ddi-triplets&run=1&text=${encodeURIComponent(input)}`;
      const dom = await chromium(url, 'dom');
      assert.match(
        dom,
        /<mark class="r0" title="drug">Aspirin<\/mark> may increase the anticoagulant activities of <mark class="r0" title="drug">warfarin<\/mark>\./,
      );
      assert.match(dom, /<td>aspirin<\/td><td>may increase the anticoagulant activities of<\/td><td>warfarin<\/td>/);
      assert.match(dom, /<h2>Raw JSON<\/h2><pre>\{/);
      const png = join(outDir, 'page-canned.png');
      await chromium(url, { screenshot: png });
      assert.ok(statSync(png).size > 10_000, 'screenshot written');
      console.log(`screenshot: ${png}`);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  },
);

test(
  'page against the real server (tiny random model): submitted from the query, result rendered',
  { skip, timeout: 180_000 },
  async () => {
    const fx = tinyFixture();
    const { model, tok } = loadExtractor({ model: fx.model, adapter: fx.adapter });
    const h = await createServer({
      model,
      tok,
      modelName: 'llama-tiny (random)',
      adapterName: 'run/adapter',
      port: 0,
      maxNewTokens: 48,
    });
    try {
      const text = 'Ketoconazole raises levels of simvastatin.';
      const url = `${h.url}/?task=ddi-triplets&run=1&text=${encodeURIComponent(text)}`;
      const dom = await chromium(url, 'dom');
      assert.match(dom, /<h2>Result \(ddi-triplets, finish: (eos|stop|length)\)<\/h2>/);
      assert.match(dom, /<h2>Raw JSON<\/h2><pre>\{/);
      assert.match(dom, /id="status"[^>]*>done in [\d.]+ ms/);
      const png = join(outDir, 'page-served.png');
      await chromium(url, { screenshot: png });
      assert.ok(statSync(png).size > 10_000, 'screenshot written');
      console.log(`screenshot: ${png}`);
    } finally {
      await h.close();
      model.dispose();
    }
  },
);

/** A page driven through the Chrome DevTools Protocol over a pipe (chromium --remote-debugging-pipe: no port, no deps). */
interface Page {
  goto(url: string): Promise<void>;
  reload(): Promise<void>;
  eval<T = unknown>(expression: string): Promise<T>;
  /** type into the focused element (as a keyboard / IME would: input events fire) */
  type(text: string): Promise<void>;
  waitFor(expression: string, what: string): Promise<void>;
}

async function withPage<T>(fn: (p: Page) => Promise<T>): Promise<T> {
  const profile = mkdtempSync(join(tmpdir(), 'medlora-chromium-'));
  profiles.push(profile);
  const child = spawn(
    CHROMIUM!,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-sync',
      '--disable-background-networking',
      `--user-data-dir=${profile}`,
      '--remote-debugging-pipe',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
  );
  const toChrome = child.stdio[3] as Writable;
  const fromChrome = child.stdio[4] as Readable;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let buf = Buffer.alloc(0);
  let nextId = 0;
  fromChrome.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    for (let i = buf.indexOf(0); i >= 0; i = buf.indexOf(0)) {
      const m = JSON.parse(buf.subarray(0, i).toString('utf8')) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
      };
      buf = buf.subarray(i + 1);
      const p = m.id !== undefined ? pending.get(m.id) : undefined;
      if (!p) continue;
      pending.delete(m.id!);
      if (m.error) p.reject(new Error(m.error.message));
      else p.resolve(m.result);
    }
  });
  const send = <R>(method: string, params: object = {}, sessionId?: string): Promise<R> =>
    new Promise<R>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      toChrome.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  try {
    const { targetId } = await send<{ targetId: string }>('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
    const evaluate = async <R>(expression: string): Promise<R> => {
      const r = await send<{ result: { value: R }; exceptionDetails?: { text: string } }>(
        'Runtime.evaluate',
        { expression, returnByValue: true, awaitPromise: true },
        sessionId,
      );
      if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.text}`);
      return r.result.value;
    };
    const waitFor = async (expression: string, what: string): Promise<void> => {
      const t0 = Date.now();
      while (!(await evaluate<boolean>(`!!(${expression})`).catch(() => false))) {
        if (Date.now() - t0 > 60_000) {
          const status = await evaluate<string>("(document.getElementById('status') || {}).textContent").catch(
            () => '',
          );
          throw new Error(`timed out waiting for ${what} (status: ${status})`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const loaded = async (): Promise<void> => {
      await waitFor(
        "document.readyState === 'complete' && !window.__old && !!document.getElementById('go')",
        'the page',
      );
    };
    return await fn({
      goto: async (url) => {
        await send('Page.navigate', { url }, sessionId);
        await loaded();
      },
      reload: async () => {
        await evaluate('window.__old = true');
        await send('Page.reload', {}, sessionId);
        await loaded();
      },
      eval: evaluate,
      type: async (text) => {
        await send('Input.insertText', { text }, sessionId);
      },
      waitFor,
    });
  } finally {
    await send('Browser.close').catch(() => undefined);
    child.kill();
  }
}

test(
  'API key from the page: without it the page says one is needed, a wrong one is refused, the right one (typed into the key field) is sent as Bearer, kept in sessionStorage across a reload and never put in the URL; the model selector picks the model',
  { skip, timeout: 180_000 },
  async () => {
    const KEY = 'sk-page-test-4242';
    const fx = tinyFixture();
    const tok = loadTokenizer(fx.model);
    const base = loadModel(fx.model);
    const ade = loadAdapterShared(base, fx.adapter).model;
    const h = await createServer({
      model: ade,
      tok,
      modelName: 'ade',
      adapterName: 'run/adapter',
      extraModels: [{ name: 'tiny-base', model: base, tok, adapterDir: null }],
      apiKey: KEY,
      port: 0,
      maxNewTokens: 24,
    });
    try {
      const html = await (await fetch(`${h.url}/`)).text();
      assert.ok(!html.includes(KEY), 'the key is not in the page');
      await withPage(async (p) => {
        const text = 'Ketoconazole raises levels of simvastatin.';
        await p.goto(`${h.url}/?task=ddi-triplets&text=${encodeURIComponent(text)}`);
        const status = "document.getElementById('status').textContent";
        assert.deepEqual(
          await p.eval("Array.from(document.getElementById('model').options).map(function (o) { return o.value; })"),
          ['ade', 'tiny-base'],
        );
        assert.equal(await p.eval("document.getElementById('key').type"), 'password');
        await p.eval("document.getElementById('go').click()");
        await p.waitFor(`${status}.indexOf('needs an API key') >= 0`, 'the missing-key message');
        await p.eval("document.getElementById('key').focus()");
        await p.type('sk-wrong');
        await p.eval("document.getElementById('go').click()");
        await p.waitFor(`${status}.indexOf('was refused') >= 0`, 'the refused-key message');
        await p.eval(
          "var k = document.getElementById('key'); k.value = ''; k.dispatchEvent(new Event('input')); k.focus()",
        );
        await p.type(KEY);
        await p.eval("document.getElementById('model').value = 'tiny-base'");
        await p.eval("document.getElementById('go').click()");
        await p.waitFor(`${status}.indexOf('done in') === 0`, 'the answer');
        const answer = JSON.parse(await p.eval<string>("document.querySelector('#results pre').textContent")) as {
          model: string;
          results: Array<{ task: string }>;
        };
        assert.equal(answer.model, 'tiny-base', 'the selected model answered');
        assert.equal(answer.results[0]!.task, 'ddi-triplets');
        assert.equal(await p.eval("sessionStorage.getItem('medlora-api-key')"), KEY);
        assert.ok(!(await p.eval<string>('location.href')).includes(KEY), 'the key is not in the URL');
        // a reload of the tab finds the key again (sessionStorage) and the request goes through with it
        await p.reload();
        assert.equal(await p.eval("document.getElementById('key').value"), KEY);
        await p.eval("document.getElementById('go').click()");
        await p.waitFor(`${status}.indexOf('done in') === 0`, 'the answer after the reload');
        assert.equal(
          (JSON.parse(await p.eval<string>("document.querySelector('#results pre').textContent")) as { model: string })
            .model,
          'ade',
          'the default model',
        );
      });
      assert.equal(h.stats().errors, 2, 'the keyless and the wrong-key requests were refused by the server');
    } finally {
      await h.close();
      ade.dispose();
      base.dispose();
    }
  },
);

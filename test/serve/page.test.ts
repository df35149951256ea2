// The web page in a real browser (headless chromium, loopback only): the form pre-filled from the query and
// submitted, the result table, the highlighted source text and the raw JSON rendered; a screenshot is written to
// $MEDLORA_SCREENSHOT_DIR (default: a temp folder). Skipped with a message when chromium is not installed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
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

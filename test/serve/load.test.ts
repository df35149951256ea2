// Bounded load test on loopback (also `npm run bench:serve`): 512 OpenAI completion requests from 32 concurrent
// keep-alive connections over two adapters of the tiny random model. Every answer must equal its own adapter's
// one-by-one greedy answer (so batches never mixed adapters), with 0 errors; latency p50 / p99 and requests/s are
// printed with the batches formed. Timing is reported, never asserted (speed claims come from benchmarks).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { setNumThreads } from '../../src/tensor/index.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { loadModel } from '../../src/model/load.js';
import { loadAdapterShared } from '../../src/adapt/methods/index.js';
import { generate } from '../../src/generate/generate.js';
import { createServer } from '../../src/serve/index.js';
import { tinyAdapter, tinyFixture } from '../evalcli/tiny.js';

setNumThreads(1);
const REQUESTS = 512;
const CONNECTIONS = 32;
const MAX_TOKENS = 4;
const fx = tinyFixture();
const tok = loadTokenizer(fx.model);
// two adapters over ONE base, as `medlora serve --adapter a=... --adapter b=...` loads them
const base = loadModel(fx.model);
const a = loadAdapterShared(base, fx.adapter).model;
const b = loadAdapterShared(base, tinyAdapter('chem', 23)).model;
after(() => {
  a.dispose();
  b.dispose();
  base.dispose();
});

const PROMPTS = ['Abilify gave me nausea', 'Lipitor and muscle pain', 'Aspirin', 'After starting Zoloft I felt dizzy'];

test(`load: ${REQUESTS} requests, ${CONNECTIONS} connections, two adapters: 0 errors, answers equal one-by-one`, async () => {
  const want = new Map<string, string>();
  for (const [name, m] of [
    ['a', a],
    ['b', b],
  ] as const) {
    for (const p of PROMPTS) want.set(`${name}|${p}`, generate(m, tok, [p], { maxNewTokens: MAX_TOKENS })[0]!.text);
  }
  const h = await createServer({
    model: a,
    tok,
    modelName: 'a',
    port: 0,
    maxNewTokens: 16,
    maxBatch: 8,
    maxConcurrent: 64,
    batchWindowMs: 2,
    extraModels: [{ name: 'b', model: b, tok, adapterDir: 'b' }],
  });
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const lat: number[] = [];
  let errors = 0;
  let wrong = 0;
  let next = 0;
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const model = i % 2 ? 'b' : 'a';
      const prompt = PROMPTS[(i >> 1) % PROMPTS.length]!;
      const body = JSON.stringify({ model, prompt, max_tokens: MAX_TOKENS, temperature: 0 });
      const t0 = performance.now();
      const req = request(
        `${h.url}/v1/completions`,
        { method: 'POST', agent, headers: { 'Content-Type': 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            lat.push(performance.now() - t0);
            if (res.statusCode !== 200) {
              errors++;
              resolve();
              return;
            }
            const j = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { choices: Array<{ text: string }> };
            if (j.choices[0]!.text !== want.get(`${model}|${prompt}`)) wrong++;
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors++;
        resolve();
      });
      req.end(body);
    });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < REQUESTS) await one(next++);
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const s = h.stats();
  agent.destroy();
  await h.close();
  lat.sort((x, y) => x - y);
  const pct = (q: number): number => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]!;
  console.log(
    `serve load: ${REQUESTS} requests / ${CONNECTIONS} connections / 2 adapters / max_tokens ${MAX_TOKENS}: ` +
      `${(REQUESTS / secs).toFixed(1)} req/s, p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms, ` +
      `${s.batches} batches (${(REQUESTS / s.batches).toFixed(2)} requests per batch), errors ${errors}, wrong answers ${wrong}, ${secs.toFixed(1)} s, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`,
  );
  assert.equal(lat.length, REQUESTS);
  assert.equal(errors, 0);
  assert.equal(wrong, 0, "every answer equals its adapter's one-by-one answer");
  assert.ok(s.batches < REQUESTS, 'requests of one adapter were batched together');
  assert.equal(s.in_flight, 0);
});

// The HTTP API end to end on the tiny fixture model (random llama + BPE tokenizer + random LoRA, test/evalcli/tiny.ts),
// on 127.0.0.1 with an ephemeral port: every route, every error path, results checked against the task schemas and
// against the library call (src/infer/extract.ts), concurrent requests, and graceful close.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { setNumThreads } from '../../src/tensor/index.js';
import { loadExtractor } from '../../src/infer/load-extractor.js';
import { extract } from '../../src/infer/extract.js';
import { STRUCTURED_TASKS, validateStructured, type StructuredTask } from '../../src/infer/parse.js';
import { TASKS } from '../../src/data/tasks.js';
import { createServer, type ServeHandle } from '../../src/serve/index.js';
import type { TextTokenizer } from '../../src/tokenize/types.js';
import { taskRecords, tinyFixture } from '../evalcli/tiny.js';

setNumThreads(1);

const MAX_NEW = 48; // short answers keep the suite fast; every task's constrained minimum is below this (ade-email: 41)
const fx = tinyFixture();
const { model, tok } = loadExtractor({ model: fx.model, adapter: fx.adapter });

/** A tokenizer that throws a plain (non-user) Error on texts containing EXPLODE, to exercise the 500 path. */
const explodingTok = new Proxy(tok, {
  get(target, prop, recv) {
    const v = Reflect.get(target, prop, recv) as unknown;
    if (prop === 'encode' && typeof v === 'function') {
      return (text: string, ...rest: unknown[]) => {
        if (text.includes('EXPLODE')) throw new Error('tokenizer exploded');
        return (v as (...a: unknown[]) => unknown).call(target, text, ...rest);
      };
    }
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
  },
}) as TextTokenizer;

let srv: ServeHandle;
const ready = createServer({
  model,
  tok: explodingTok,
  modelName: 'tiny-llama',
  adapterName: 'run/adapter',
  host: '127.0.0.1',
  port: 0,
  maxBatch: 4,
  maxNewTokens: MAX_NEW,
  maxTexts: 16,
  maxInputChars: 300,
  maxBodyBytes: 16 * 1024,
  batchWindowMs: 40,
}).then((h) => {
  srv = h;
  return h;
});
after(async () => {
  await srv?.close();
  model.dispose();
});

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON replies of any shape
  json: () => any;
}

/** One HTTP request over loopback (node:http, so the test controls the method, headers and raw body). */
function call(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${srv.url}${path}`,
      { method, headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode!, headers: res.headers, text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}
const post = (body: unknown): Promise<Res> =>
  call('POST', '/v1/extract', typeof body === 'string' ? body : JSON.stringify(body));

/** A minimal JSON Schema check (type, required, properties, additionalProperties: false, items), written here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON replies of any shape
function checkSchema(v: unknown, s: Record<string, any>, at = 'result'): void {
  const t = s.type as string;
  if (t === 'array') {
    assert.ok(Array.isArray(v), `${at}: expected an array`);
    (v as unknown[]).forEach((x, i) => checkSchema(x, s.items, `${at}[${i}]`));
  } else if (t === 'object') {
    assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${at}: expected an object`);
    const o = v as Record<string, unknown>;
    for (const k of s.required ?? []) assert.ok(k in o, `${at}: missing ${k}`);
    for (const k of Object.keys(o)) {
      assert.ok(k in s.properties || s.additionalProperties !== false, `${at}: unexpected key ${k}`);
      if (s.properties[k]) checkSchema(o[k], s.properties[k], `${at}.${k}`);
    }
  } else {
    assert.equal(typeof v, t, `${at}: expected ${t}`);
  }
}

/** Lower-cased, whitespace-collapsed text (the span contract of src/infer/extract.ts, for the spanned slice). */
const norm = (s: string): string =>
  s
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .replace(/[.,;:]+$/, '')
    .trim();

test('GET /health and GET /v1/tasks describe the model, adapter, engine and every task', async () => {
  await ready;
  const h = await call('GET', '/health');
  assert.equal(h.status, 200);
  assert.match(String(h.headers['content-type']), /^application\/json/);
  const j = h.json();
  assert.equal(j.status, 'ok');
  assert.equal(j.model, 'tiny-llama');
  assert.equal(j.adapter, 'run/adapter');
  assert.equal(typeof j.engine.torch_version, 'string');
  assert.equal(j.engine.threads, 1);
  assert.ok(j.uptime_s >= 0);
  assert.equal(j.limits.max_batch, 4);
  assert.deepEqual(j.tasks, [...STRUCTURED_TASKS]);
  const t = await call('GET', '/v1/tasks');
  assert.equal(t.status, 200);
  const tasks = t.json().tasks as Array<{
    name: StructuredTask;
    instruction: string;
    output_schema: { type: string };
    entity_roles: string[];
  }>;
  assert.deepEqual(
    tasks.map((x) => x.name),
    [...STRUCTURED_TASKS],
  );
  for (const x of tasks) {
    assert.equal(x.instruction, TASKS[x.name].instruction);
    assert.equal(x.output_schema.type, x.name === 'ade-email' ? 'object' : 'array');
    assert.ok(x.entity_roles.length >= 1);
  }
  // HEAD answers headers only; counters move
  const head = await call('HEAD', '/health');
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
  assert.ok((await call('GET', '/health')).json().requests_served >= 3);
});

test('POST /v1/extract: every task answers, parses, matches its schema, the library call and its spans', async () => {
  await ready;
  const recs = taskRecords();
  const tasks = (await call('GET', '/v1/tasks')).json().tasks as Array<{
    name: StructuredTask;
    output_schema: Record<string, unknown>;
    entity_roles: string[];
  }>;
  for (const info of tasks) {
    const task = info.name;
    const texts = recs[task].map((r) => r.input);
    const r = await post({ task, texts });
    assert.equal(r.status, 200, r.text);
    const j = r.json();
    assert.equal(j.model, 'tiny-llama');
    assert.equal(j.adapter, 'run/adapter');
    assert.ok(typeof j.elapsed_ms === 'number' && j.elapsed_ms > 0);
    // the same texts through the library, directly (greedy: identical answers expected)
    const lib = extract(
      model,
      tok,
      task,
      texts.map((text, i) => ({ id: String(i), text })),
      { maxNewTokens: MAX_NEW, batchSize: 4 },
    ).results;
    assert.equal(j.results.length, texts.length);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON replies of any shape
    j.results.forEach((res: any, i: number) => {
      assert.equal(res.task, task);
      assert.equal(res.input, texts[i]);
      assert.equal(res.parsed, true, `${task}: ${res.raw}`);
      assert.deepEqual(res.unparsed, []);
      assert.ok(['eos', 'stop', 'length'].includes(res.finish_reason));
      checkSchema(res.result, info.output_schema);
      validateStructured(task, res.result, `${task} result ${i}`); // throws on a wrong shape
      assert.equal(res.raw, lib[i]!.output);
      assert.deepEqual(res.result, lib[i]!.result);
      const cps = Array.from(texts[i]!);
      for (const e of res.entities) {
        assert.ok(info.entity_roles.includes(e.role), `${task}: role ${e.role}`);
        for (const [s, end] of e.spans)
          assert.equal(norm(cps.slice(s, end).join('')), norm(e.text), `${task}: span [${s}, ${end}) of "${e.text}"`);
      }
    });
  }
});

test('error paths: clear JSON errors with status and field; the server keeps serving', async () => {
  await ready;
  const cases: Array<[string, () => Promise<Res>, number, RegExp, string?]> = [
    ['bad JSON', () => post('{"task": "chemicals", '), 400, /body: invalid JSON/, 'body'],
    ['not an object', () => post('[1, 2]'), 400, /expected a JSON object/, 'body'],
    ['unknown task', () => post({ task: 'nope', text: 'x' }), 400, /unknown task "nope"/, 'task'],
    ['qa is not served', () => post({ task: 'qa', text: 'x' }), 400, /unknown task "qa"/, 'task'],
    ['missing task', () => post({ text: 'x' }), 400, /task: required/, 'task'],
    ['missing text', () => post({ task: 'chemicals' }), 400, /text: required/, 'text'],
    ['empty text', () => post({ task: 'chemicals', text: '  ' }), 400, /text: must not be empty/, 'text'],
    [
      'text not a string',
      () => post({ task: 'chemicals', text: 5 }),
      400,
      /text: expected a string, got number/,
      'text',
    ],
    ['both text and texts', () => post({ task: 'chemicals', text: 'a', texts: ['b'] }), 400, /not both/, 'texts'],
    [
      'texts item',
      () => post({ task: 'chemicals', texts: ['ok', null] }),
      400,
      /texts\[1\]: expected a string, got null/,
      'texts[1]',
    ],
    [
      'too many texts',
      () => post({ task: 'chemicals', texts: Array(17).fill('a') }),
      400,
      /too many texts: 17 \(at most 16/,
      'texts',
    ],
    [
      'too long',
      () => post({ task: 'chemicals', text: 'a'.repeat(301) }),
      400,
      /text: too long: more than 300 characters/,
      'text',
    ],
    [
      'too long in texts',
      () => post({ task: 'chemicals', texts: ['ok', 'b'.repeat(301)] }),
      400,
      /texts\[1\]: too long/,
      'texts[1]',
    ],
    [
      'unknown field',
      () => post({ task: 'chemicals', text: 'a', temprature: 1 }),
      400,
      /temprature: unknown field/,
      'temprature',
    ],
    [
      'max_new_tokens over the limit',
      () => post({ task: 'chemicals', text: 'a', max_new_tokens: MAX_NEW + 1 }),
      400,
      /max_new_tokens: expected an integer from 1 to 48/,
      'max_new_tokens',
    ],
    [
      'max_new_tokens below the constrained minimum',
      () => post({ task: 'ade-email', text: 'a', max_new_tokens: 3 }),
      400,
      /^max_new_tokens 3 is too small for a constrained ade-email answer/,
      'max_new_tokens',
    ],
    [
      'bad temperature',
      () => post({ task: 'chemicals', text: 'a', temperature: -1 }),
      400,
      /temperature: expected a number from 0/,
      'temperature',
    ],
    [
      'bad constrain',
      () => post({ task: 'chemicals', text: 'a', constrain: 'yes' }),
      400,
      /constrain: expected true or false/,
      'constrain',
    ],
    [
      'body over the limit',
      () => post({ task: 'chemicals', text: 'a'.repeat(17 * 1024) }),
      413,
      /over the server's limit of 16384 bytes/,
      'body',
    ],
    ['unknown route', () => call('GET', '/v2/nothing'), 404, /no route \/v2\/nothing/],
    ['wrong method', () => call('GET', '/v1/extract'), 405, /GET \/v1\/extract is not allowed \(use POST\)/],
    ['wrong method on /health', () => call('DELETE', '/health'), 405, /DELETE \/health is not allowed/],
    [
      'internal error',
      () => post({ task: 'chemicals', text: 'please EXPLODE' }),
      500,
      /internal error: tokenizer exploded/,
    ],
  ];
  for (const [name, f, status, re, field] of cases) {
    const r = await f();
    assert.equal(r.status, status, `${name}: ${r.text}`);
    assert.match(String(r.headers['content-type']), /^application\/json/, name);
    const e = r.json().error;
    assert.equal(e.status, status, name);
    assert.match(e.message, re, name);
    if (field) assert.equal(e.field, field, name);
  }
  assert.equal((await call('POST', '/health')).headers.allow, 'GET, HEAD');
  // chunked body (no Content-Length) over the limit is refused while streaming
  const chunked = await call('POST', '/v1/extract', JSON.stringify({ task: 'chemicals', text: 'z'.repeat(20000) }), {
    'Transfer-Encoding': 'chunked',
  });
  assert.equal(chunked.status, 413);
  // still alive, and a good request in the same batch as a failing one is unaffected
  const [ok, boom] = await Promise.all([
    post({ task: 'diseases', text: 'Fever was reduced.' }),
    post({ task: 'diseases', text: 'EXPLODE fever' }),
  ]);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json().results[0].parsed, true);
  assert.equal(boom.status, 500);
  assert.equal((await call('GET', '/health')).status, 200);
});

test('8 concurrent requests: all answered correctly (as one by one), batched up to --max-batch, within 60 s', async () => {
  await ready;
  const texts = Object.values(taskRecords())
    .flat()
    .map((r) => r.input)
    .slice(0, 8);
  const expected = texts.map(
    (text) => extract(model, tok, 'drug-ae', [{ id: '1', text }], { maxNewTokens: MAX_NEW }).results[0]!,
  );
  const before = srv.stats().batches;
  const t0 = performance.now();
  const rs = await Promise.all(texts.map((text) => post({ task: 'drug-ae', text })));
  const ms = performance.now() - t0;
  assert.ok(ms < 60_000, `took ${ms} ms`);
  rs.forEach((r, i) => {
    assert.equal(r.status, 200, r.text);
    const res = r.json();
    assert.equal(res.results[0].input, texts[i]);
    assert.equal(res.results[0].raw, expected[i]!.output);
    assert.equal(res.results[0].parsed, true);
    assert.ok(res.batch.texts <= 4, `batch of ${res.batch.texts} texts exceeds --max-batch 4`);
  });
  const batches = srv.stats().batches - before;
  // 8 one-text requests sent together, at most 4 per batch: at least 2 batches; fewer than 8 shows they were shared
  assert.ok(batches >= 2 && batches < 8, `ran ${batches} batches`);
  console.log(`8 concurrent drug-ae requests: ${ms.toFixed(0)} ms, ${batches} batches`);
  // sampled requests (temperature > 0) never share a batch, and a seed repeats its answer
  const s = await Promise.all(
    [1, 2].map(() =>
      post({ task: 'chemicals', text: 'Cisplatin and lithium caused renal damage.', temperature: 1, seed: 5 }),
    ),
  );
  for (const r of s) {
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().batch.jobs, 1);
  }
  assert.equal(s[0]!.json().results[0].raw, s[1]!.json().results[0].raw);
});

test('GET / serves a self-contained page (no external assets) with the form and the task list', async () => {
  await ready;
  const r = await call('GET', '/?task=chemicals&text=x');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/html/);
  const csp = String(r.headers['content-security-policy']);
  assert.match(csp, /default-src 'none'/);
  const nonce = /nonce-([A-Za-z0-9+/=]+)/.exec(csp)![1]!;
  assert.ok(r.text.includes(`<script nonce="${nonce}">`));
  for (const id of ['task', 'text', 'go', 'results']) assert.match(r.text, new RegExp(`id="${id}"`));
  assert.doesNotMatch(r.text, /\b(src|href)=/i, 'no external scripts, styles or links');
  assert.doesNotMatch(r.text, /https?:\/\//);
  const data = /<script type="application\/json" id="tasks">(.*?)<\/script>/s.exec(r.text)![1]!;
  assert.deepEqual(
    (JSON.parse(data) as Array<{ name: string }>).map((t) => t.name),
    [...STRUCTURED_TASKS],
  );
});

test('close(): finishes the in-flight request, then refuses connections', async () => {
  await ready;
  // a long batch window keeps the request queued (not yet running) when close() is called
  const h = await createServer({
    model,
    tok,
    modelName: 'm',
    port: 0,
    maxNewTokens: MAX_NEW,
    tasks: ['chemicals'],
    batchWindowMs: 300,
  });
  try {
    const pending = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${h.url}/v1/extract`,
        { method: 'POST', headers: { 'Content-Type': 'application/json' } },
        (res) => {
          let t = '';
          res.on('data', (c: Buffer) => {
            t += c.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode!, body: t }));
        },
      );
      req.on('error', reject);
      // one task served: "task" may be left out
      req.end(JSON.stringify({ texts: ['Aspirin reduced fever.', 'Nothing here.'] }));
    });
    for (let i = 0; i < 200 && h.stats().queued === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(h.stats().queued, 1);
    await h.close();
    const got = await pending;
    assert.equal(got.status, 200, got.body);
    assert.equal((JSON.parse(got.body) as { results: unknown[] }).results.length, 2);
    await assert.rejects(fetch(`${h.url}/health`), /fetch failed/);
  } finally {
    await h.close();
  }
});

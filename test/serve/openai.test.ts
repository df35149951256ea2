// The OpenAI-compatible routes driven by the official `openai` npm client over loopback (127.0.0.1, ephemeral
// port) on the tiny random model: one base and two adapters with different tasks. Answers are compared with the
// library's generate() on the same model (independent of the HTTP layer); streaming deltas must add up to the whole
// answer; errors arrive as the client's typed errors; the API key, 413/429 limits and disconnects are checked.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { setNumThreads } from '../../src/tensor/index.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { loadModel } from '../../src/model/load.js';
import { loadAdapter } from '../../src/adapt/peft-io.js';
import { generate } from '../../src/generate/generate.js';
import { createServer, type ServeHandle } from '../../src/serve/index.js';
import { TINY_CHAT_TEMPLATE, tinyAdapter, tinyFixture } from '../evalcli/tiny.js';

setNumThreads(1);
const fx = tinyFixture();
const tok = loadTokenizer(fx.model, { chatTemplate: TINY_CHAT_TEMPLATE });
const base = loadModel(fx.model);
const ade = loadModel(fx.model);
loadAdapter(ade, fx.adapter);
const chem = loadModel(fx.model);
loadAdapter(chem, tinyAdapter('chem', 23));
const KEY = 'sk-test-medlora';

let srv: ServeHandle;
const ready = createServer({
  model: base,
  tok,
  modelName: 'tiny-base',
  host: '127.0.0.1',
  port: 0,
  maxNewTokens: 48,
  maxBodyBytes: 8192,
  batchWindowMs: 20,
  apiKey: KEY,
  extraModels: [
    { name: 'ade', model: ade, tok, adapterDir: 'ade/adapter', tasks: ['ade-email'] },
    { name: 'chem', model: chem, tok, adapterDir: 'chem/adapter', tasks: ['chemicals'] },
  ],
}).then((h) => {
  srv = h;
  return h;
});
after(async () => {
  await srv?.close();
  base.dispose();
  ade.dispose();
  chem.dispose();
});

const client = async (apiKey = KEY): Promise<OpenAI> =>
  new OpenAI({ baseURL: `${(await ready).url}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
const MESSAGES = [
  { role: 'system' as const, content: 'You extract drugs.' },
  { role: 'user' as const, content: 'After starting Abilify I had nausea.' },
];
const chatText = tok.applyChatTemplate(MESSAGES, { addGenerationPrompt: true });
const ref = (model: typeof base, prompt: string, max: number, addSpecialTokens: boolean) =>
  generate(model, tok, [prompt], { maxNewTokens: max, addSpecialTokens })[0]!;

test('GET /v1/models lists the base and both adapters', async () => {
  const c = await client();
  const ids: string[] = [];
  for await (const m of c.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ['tiny-base', 'ade', 'chem']);
});

test('chat completion (greedy) equals generate() on the templated prompt; usage counts tokens', async () => {
  const c = await client();
  const r = await c.chat.completions.create({ model: 'ade', messages: MESSAGES, max_tokens: 12, temperature: 0 });
  const want = ref(ade, chatText, 12, false);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'ade');
  assert.equal(r.choices[0]!.message.role, 'assistant');
  assert.equal(r.choices[0]!.message.content, want.text);
  assert.equal(r.choices[0]!.finish_reason, want.finishReason === 'length' ? 'length' : 'stop');
  const promptTokens = tok.encode(chatText, { addSpecialTokens: false }).length;
  assert.deepEqual(r.usage, {
    prompt_tokens: promptTokens,
    completion_tokens: want.ids.length,
    total_tokens: promptTokens + want.ids.length,
  });
  console.log(`chat: ${JSON.stringify(r.choices[0]!.message.content)} (${r.usage!.completion_tokens} tokens)`);
});

test('text completion equals generate(); a stop string cuts the text', async () => {
  const c = await client();
  const prompt = 'Lipitor gave me';
  const r = await c.completions.create({ model: 'tiny-base', prompt, max_tokens: 10, temperature: 0 });
  const want = ref(base, prompt, 10, true);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0]!.text, want.text);
  // stop at a piece of the greedy answer: the text ends right before it
  const cutAt = want.text.slice(3, 5);
  assert.ok(cutAt.length === 2, 'the greedy answer is long enough to cut');
  const s = await c.completions.create({ model: 'tiny-base', prompt, max_tokens: 10, temperature: 0, stop: [cutAt] });
  assert.equal(s.choices[0]!.text, want.text.slice(0, want.text.indexOf(cutAt)));
  assert.equal(s.choices[0]!.finish_reason, 'stop');
});

test('sampling: the same seed gives the same text; top_p and temperature are accepted', async () => {
  const c = await client();
  const ask = (seed: number) =>
    c.completions.create({ model: 'chem', prompt: 'Aspirin', max_tokens: 8, temperature: 0.9, top_p: 0.95, seed });
  const [a, b] = await Promise.all([ask(5), ask(5)]);
  assert.equal(a.choices[0]!.text, b.choices[0]!.text);
  const want = generate(chem, tok, ['Aspirin'], { maxNewTokens: 8, temperature: 0.9, topP: 0.95, seed: 5 })[0]!;
  assert.equal(a.choices[0]!.text, want.text);
});

test('streaming: SSE chunks add up to the whole answer, then usage, then [DONE]', async () => {
  const c = await client();
  const whole = await c.chat.completions.create({ model: 'chem', messages: MESSAGES, max_tokens: 16, temperature: 0 });
  const stream = await c.chat.completions.create({
    model: 'chem',
    messages: MESSAGES,
    max_tokens: 16,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let chunks = 0;
  let finish: string | null = null;
  let usage: unknown;
  for await (const ch of stream) {
    chunks++;
    assert.equal(ch.object, 'chat.completion.chunk');
    if (ch.usage) usage = ch.usage;
    for (const choice of ch.choices) {
      text += choice.delta.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(text, whole.choices[0]!.message.content);
  assert.equal(finish, whole.choices[0]!.finish_reason);
  assert.deepEqual(usage, whole.usage);
  assert.ok(chunks >= 3, `several chunks (${chunks})`);
  // text completions stream too
  const ts = await c.completions.create({
    model: 'tiny-base',
    prompt: 'Lipitor gave me',
    max_tokens: 10,
    temperature: 0,
    stream: true,
  });
  let t2 = '';
  for await (const ch of ts) t2 += ch.choices[0]?.text ?? '';
  assert.equal(t2, ref(base, 'Lipitor gave me', 10, true).text);
});

test('model selection: each adapter answers as its own model, and /v1/extract uses its task', async () => {
  const c = await client();
  const ask = (model: string) =>
    c.chat.completions.create({ model, messages: MESSAGES, max_tokens: 10, temperature: 0 });
  // asked together: the queue must keep the adapters in separate batches
  const [a, b, z] = await Promise.all([ask('ade'), ask('chem'), ask('tiny-base')]);
  assert.equal(a.choices[0]!.message.content, ref(ade, chatText, 10, false).text);
  assert.equal(b.choices[0]!.message.content, ref(chem, chatText, 10, false).text);
  assert.equal(z.choices[0]!.message.content, ref(base, chatText, 10, false).text);
  assert.notEqual(
    a.choices[0]!.message.content,
    b.choices[0]!.message.content,
    'two random adapters answer differently',
  );
  const ex = async (model: string) =>
    c.post<{ model: string; results: Array<{ task: string }> }>('/extract', {
      body: { model, text: 'Lipitor gave me muscle pain.', max_new_tokens: 48 },
    });
  const [ea, eb] = await Promise.all([ex('ade'), ex('chem')]);
  assert.equal(ea.model, 'ade');
  assert.equal(ea.results[0]!.task, 'ade-email');
  assert.equal(eb.results[0]!.task, 'chemicals');
});

test('response_format json_schema: the reply parses and validates (checked here by hand); unsupported schemas are a 400', async () => {
  const c = await client();
  const schema = {
    type: 'object',
    additionalProperties: false,
    required: ['drug_name', 'adverse_events'],
    properties: {
      drug_name: { type: 'string', enum: ['Abilify', 'Lipitor'] },
      adverse_events: { type: 'array', minItems: 1, maxItems: 3, items: { type: 'string' } },
      serious: { type: 'boolean' },
    },
  };
  for (const [model, seed] of [
    ['ade', 1],
    ['chem', 2],
    ['tiny-base', 3],
  ] as const) {
    const r = await c.chat.completions.create({
      model,
      messages: MESSAGES,
      max_tokens: 48,
      temperature: 0.9,
      seed,
      response_format: { type: 'json_schema', json_schema: { name: 'ae', strict: true, schema } },
    });
    const text = r.choices[0]!.message.content!;
    const v = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(
      Object.keys(v).filter((k) => !['drug_name', 'adverse_events', 'serious'].includes(k)),
      [],
      'no other keys',
    );
    assert.ok(['Abilify', 'Lipitor'].includes(v.drug_name as string), `drug_name in the enum: ${text}`);
    const ae = v.adverse_events as unknown[];
    assert.ok(
      Array.isArray(ae) && ae.length >= 1 && ae.length <= 3 && ae.every((x) => typeof x === 'string'),
      `adverse_events: ${text}`,
    );
    assert.ok(v.serious === undefined || typeof v.serious === 'boolean');
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    console.log(`json_schema (${model}): ${text}`);
  }
  // the checker can fail: a plain (unconstrained) reply of the random model is not such JSON
  const plain = await c.chat.completions.create({ model: 'ade', messages: MESSAGES, max_tokens: 48, temperature: 0 });
  assert.throws(() => JSON.parse(plain.choices[0]!.message.content!));
  const refuse: Array<[Record<string, unknown>, RegExp, string]> = [
    [
      { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a' } } },
      /"pattern" is not supported/,
      'response_format.json_schema.schema',
    ],
  ];
  for (const [rf, re, param] of refuse) {
    await assert.rejects(
      c.chat.completions.create({ model: 'ade', messages: MESSAGES, response_format: rf as never }),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.BadRequestError);
        assert.match(e.message, re);
        assert.equal((e.error as { param: string }).param, param);
        return true;
      },
    );
  }
  // too few tokens for any valid answer: a 400, not a truncated reply
  await assert.rejects(
    c.chat.completions.create({
      model: 'ade',
      messages: MESSAGES,
      max_tokens: 3,
      response_format: { type: 'json_schema', json_schema: { name: 'ae', schema } },
    }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && /too small/.test(e.message),
  );
});

test('response_format json_object: every reply parses to a JSON object (chat and text completions, many seeds)', async () => {
  const c = await client();
  const depth = (v: unknown): number =>
    typeof v !== 'object' || v === null ? 0 : 1 + Math.max(0, ...Object.values(v).map(depth));
  let parsed = 0,
    members = 0;
  const N = 32;
  for (let k = 0; k < N; k += 4) {
    const replies = await Promise.all(
      [k, k + 1, k + 2, k + 3].map(async (seed) => {
        const opts = {
          max_tokens: 8 + (seed % 4) * 12,
          temperature: 1,
          seed,
          response_format: { type: 'json_object' },
        };
        if (seed % 2 === 0) {
          const r = await c.chat.completions.create({
            model: seed % 4 === 0 ? 'ade' : 'tiny-base',
            messages: MESSAGES,
            ...opts,
            response_format: { type: 'json_object' },
          });
          return { text: r.choices[0]!.message.content!, finish: r.choices[0]!.finish_reason };
        }
        // the text route takes response_format too (an extension of the OpenAI API: not in the client's types)
        const r = await c.completions.create({ model: 'chem', prompt: 'Reply in JSON:', ...opts } as never);
        return {
          text: (r as OpenAI.Completion).choices[0]!.text,
          finish: (r as OpenAI.Completion).choices[0]!.finish_reason,
        };
      }),
    );
    for (const { text, finish } of replies) {
      const v = JSON.parse(text) as unknown;
      assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `not an object: ${text}`);
      assert.ok(depth(v) <= 8, `nested deeper than 8: ${text}`);
      assert.equal(finish, 'stop', 'the constrained reply ends by itself within max_tokens');
      parsed++;
      if (Object.keys(v as object).length) members++;
    }
  }
  console.log(`json_object: ${parsed}/${N} replies parse as objects (${members} with members)`);
  assert.equal(parsed, N);
  assert.ok(members > 0, 'the random model writes members, not only {}');
});

test('errors: OpenAI-shaped, typed by the client, naming the field', async () => {
  const c = await client();
  const cases: Array<[string, () => Promise<unknown>, number, RegExp, string | null]> = [
    [
      'unknown model',
      () => c.chat.completions.create({ model: 'nope', messages: MESSAGES }),
      404,
      /model "nope" does not exist/,
      'model',
    ],
    ['n > 1', () => c.chat.completions.create({ model: 'ade', messages: MESSAGES, n: 2 }), 400, /only n = 1/, 'n'],
    [
      'penalty',
      () => c.chat.completions.create({ model: 'ade', messages: MESSAGES, frequency_penalty: 0.5 }),
      400,
      /not supported/,
      'frequency_penalty',
    ],
    [
      'max_tokens',
      () => c.chat.completions.create({ model: 'ade', messages: MESSAGES, max_tokens: 4096 }),
      400,
      /from 1 to 48/,
      'max_tokens',
    ],
    [
      'bad role',
      () => c.chat.completions.create({ model: 'ade', messages: [{ role: 'robot', content: 'x' } as never] }),
      400,
      /role/,
      'messages[0].role',
    ],
    [
      'no prompt',
      () => c.completions.create({ model: 'ade', prompt: null as never }),
      400,
      /prompt: required/,
      'prompt',
    ],
    [
      'response_format type',
      () => c.chat.completions.create({ model: 'ade', messages: MESSAGES, response_format: { type: 'xml' } as never }),
      400,
      /response_format.type/,
      'response_format.type',
    ],
  ];
  for (const [name, fn, status, re, param] of cases) {
    await assert.rejects(fn, (e: unknown) => {
      assert.ok(e instanceof OpenAI.APIError, `${name}: an APIError`);
      assert.equal(e.status, status, name);
      assert.match(e.message, re, name);
      assert.equal((e.error as { param: string | null }).param, param, name);
      assert.equal(typeof (e.error as { type: string }).type, 'string', name);
      return true;
    });
  }
  await assert.rejects(
    (await client('sk-wrong')).models.list(),
    (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401,
  );
  await assert.rejects((await client('')).models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
  // the page and /health need no key
  assert.equal((await fetch(`${srv.url}/health`)).status, 200);
  // body over the limit: 413
  const big = await fetch(`${srv.url}/v1/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'ade', prompt: 'x'.repeat(9000) }),
  });
  assert.equal(big.status, 413);
  assert.equal(((await big.json()) as { error: { type: string } }).error.type, 'invalid_request_error');
});

test('429 past max_concurrent; a client that disconnects mid-stream releases its slot', async () => {
  const h = await createServer({
    model: ade,
    tok,
    modelName: 'ade',
    port: 0,
    maxNewTokens: 32,
    maxConcurrent: 2,
    batchWindowMs: 150,
  });
  try {
    const body = (extra: Record<string, unknown> = {}) =>
      JSON.stringify({ model: 'ade', prompt: 'Abilify', max_tokens: 24, temperature: 0, ...extra });
    const post = (b: string, signal?: AbortSignal) =>
      fetch(`${h.url}/v1/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: b,
        ...(signal ? { signal } : {}),
      });
    // two requests fill the slots while they wait in the batch window; a third is refused at once
    const p1 = post(body());
    const p2 = post(body());
    await new Promise((r) => setTimeout(r, 30));
    const third = await post(body());
    assert.equal(third.status, 429);
    assert.equal(third.headers.get('retry-after'), '1');
    assert.equal(((await third.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
    assert.equal((await p1).status, 200);
    assert.equal((await p2).status, 200);
    // a stream abandoned after its first chunk: the slot comes back (bounded wait), and both slots serve again
    for (let round = 0; round < 3; round++) {
      const ac = new AbortController();
      const res = await post(body({ stream: true }), ac.signal);
      const reader = res.body!.getReader();
      const first = await reader.read();
      assert.match(new TextDecoder().decode(first.value), /^data: /);
      ac.abort();
      await reader.cancel().catch(() => undefined);
      for (let i = 0; i < 200 && h.stats().in_flight > 0; i++) await new Promise((r) => setTimeout(r, 25));
      assert.equal(h.stats().in_flight, 0, `round ${round}: the slot is released`);
    }
    const after2 = await Promise.all([post(body()), post(body())]);
    assert.deepEqual(
      after2.map((r) => r.status),
      [200, 200],
    );
    await Promise.all(after2.map((r) => r.text()));
  } finally {
    await h.close();
  }
});

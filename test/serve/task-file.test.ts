// `medlora serve --task-file task.json` as a real process (bin/medlora.js) on the tiny random model: a user-defined
// schema task is defined from the file, served by /v1/extract (constrained to the schema) and usable as a chat
// completion's response_format; every answer is checked against the schema here, with the library's validate().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validate, type JsonSchema } from '../../src/data/tasks/index.js';
import { TINY_CHAT_TEMPLATE, tinyFixture } from '../evalcli/tiny.js';

const BIN = fileURLToPath(new URL('../../../bin/medlora.js', import.meta.url));

const SCHEMA: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['drug', 'reactions'],
  properties: {
    drug: { type: 'string', maxLength: 20 },
    reactions: { type: 'array', minItems: 1, maxItems: 3, items: { type: 'string', maxLength: 16 } },
    serious: { type: 'boolean' },
    dose_mg: { type: 'integer', minimum: 0, maximum: 5000 },
  },
};

test(
  'medlora serve --task-file: /v1/extract and a chat completion answer in the user-defined schema',
  { timeout: 180_000 },
  async () => {
    const fx = tinyFixture();
    const dir = mkdtempSync(join(tmpdir(), 'medlora-task-file-'));
    const file = join(dir, 'task.json');
    const template = join(dir, 'chat.jinja');
    writeFileSync(template, TINY_CHAT_TEMPLATE);
    writeFileSync(
      file,
      JSON.stringify({ name: 'drug-reaction', instruction: 'Extract the drug and reactions as JSON.', schema: SCHEMA }),
    );
    const child = spawn(
      process.execPath,
      [
        BIN,
        'serve',
        '--task-file',
        file,
        '--model',
        fx.model,
        '--task',
        'drug-reaction',
        '--port',
        '0',
        '--json',
        '--max-new-tokens',
        '64',
        '--threads',
        '1',
        '--chat-template',
        template,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', (l) =>
          resolve(JSON.parse(l) as Record<string, unknown>),
        );
        void exit.then((c) => reject(new Error(`serve exited (${c}) before listening: ${err}`)));
      });
      assert.equal(listening.event, 'listening');
      const url = String(listening.url);
      const health = (await (await fetch(`${url}/health`)).json()) as { tasks: string[] };
      assert.deepEqual(health.tasks, ['drug-reaction']);

      const texts = [
        'Amiodarone caused pulmonary fibrosis.',
        'After 20 mg of Abilify I had nausea and tremor.',
        'No drug.',
      ];
      const res = await fetch(`${url}/v1/extract`, {
        method: 'POST',
        body: JSON.stringify({ task: 'drug-reaction', texts }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as {
        results: Array<{ task: string; result: unknown; parsed: boolean; unparsed: string[] }>;
      };
      assert.equal(body.results.length, texts.length);
      for (const r of body.results) {
        assert.equal(r.task, 'drug-reaction');
        assert.ok(r.parsed, `unparsed: ${r.unparsed.join('; ')}`);
        assert.deepEqual(validate(SCHEMA, r.result), [], JSON.stringify(r.result));
        console.log(`  extract: ${JSON.stringify(r.result)}`);
      }
      // the checker can fail: an answer missing a required key does not validate
      assert.notDeepEqual(validate(SCHEMA, { drug: 'x' }), []);

      const chat = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        body: JSON.stringify({
          model: 'model',
          messages: [{ role: 'user', content: texts[1] }],
          max_tokens: 64,
          temperature: 1,
          seed: 7,
          response_format: { type: 'json_schema', json_schema: { name: 'drug-reaction', schema: SCHEMA } },
        }),
      });
      assert.equal(chat.status, 200, await chat.clone().text());
      const reply = ((await chat.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message
        .content;
      console.log(`  chat: ${reply}`);
      assert.deepEqual(validate(SCHEMA, JSON.parse(reply)), []);
      child.kill('SIGTERM');
      assert.equal(await exit, 0, err);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

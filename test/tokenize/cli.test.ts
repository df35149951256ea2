// `medlora tokenize` end to end through the CLI entry point: text, --ids and --json output, and a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';

const skip = hasShared() ? false : 'no ../shared fixtures';
const run = (...args: string[]): { code: number | null; out: string; err: string } => {
  const r = spawnSync(process.execPath, ['bin/medlora.js', 'tokenize', ...args], {
    cwd: packageRoot(),
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

test('medlora tokenize prints ids, tokens and JSON', { skip }, () => {
  const gpt2 = sharedPath('fixtures', 'hf', 'gpt2');
  // "Hello world" -> [15496, 995] per the generated HF oracle (reference_encodings.json)
  assert.deepEqual(run('--tokenizer', gpt2, '--ids', 'Hello world'), { code: 0, out: '15496 995\n', err: '' });
  const j = JSON.parse(run('--tokenizer', gpt2, '--json', 'Hello', 'world').out) as {
    ids: number[];
    tokens: string[];
    eos_id: number;
  };
  assert.deepEqual(j.ids, [15496, 995]);
  assert.deepEqual(j.tokens, ['Hello', 'Ġworld']);
  assert.equal(j.eos_id, 50256);
  const llama = run('--tokenizer', sharedPath('fixtures', 'hf', 'Llama-2-70b-chat-hf'), 'Hi');
  assert.equal(llama.code, 0);
  assert.match(llama.out, /^\s*1 {2}"<s>" {2}\(special\)$/m);
  assert.equal(
    run(
      '--tokenizer',
      sharedPath('fixtures', 'hf', 'Llama-2-70b-chat-hf'),
      '--no-special',
      '--ids',
      'Hi',
    ).out.startsWith('1 '),
    false,
  );
});

test('medlora tokenize: missing tokenizer is one clear line and a non-zero exit', () => {
  const r = run('--tokenizer', '/nonexistent/dir', 'x');
  assert.equal(r.code, 1);
  assert.equal(r.err.trim(), 'medlora tokenize: error: tokenizer folder /nonexistent/dir does not exist');
  const r2 = run('x');
  assert.notEqual(r2.code, 0);
  assert.match(r2.err, /--tokenizer DIR is required/);
});

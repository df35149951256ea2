// The training contract end to end: `medlora train` with prompt_style chat on a tiny model whose tokenizer has a chat
// template writes medlora_contract.json beside every adapter (checkpoints and final); eval, extract and serve then
// prompt with the chat template, the run's max_length and its task without any flag; a contradicting flag wins with
// one warning line; a plain PEFT adapter keeps today's defaults silently. Also: max_length above the model's
// max_position_embeddings is refused at setup, and generation past the positions stops with a visible truncation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setNumThreads } from '../../src/tensor/index.js';
import type { MedRecord } from '../../src/data/schema.js';
import { NER_INSTRUCTIONS } from '../../src/data/tasks.js';
import { CONTRACT_FILE, readContract, sha256 } from '../../src/data/contract.js';
import { loadExtractor } from '../../src/infer/load-extractor.js';
import { extract } from '../../src/infer/extract.js';
import { packageRoot } from '../../src/util/paths.js';
import { runCli } from '../eval/capture.js';
import { taskRecords, tinyFixture, writeRecords } from '../evalcli/tiny.js';

setNumThreads(1);

const TEMPLATE =
  "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<s>assistant\n{% endif %}";
const GEN = ['--max-new-tokens', '24', '--batch-size', '4', '--quiet'];

/** The tiny model folder with a chat template added to its tokenizer_config.json. */
function chatModel(): string {
  const fx = tinyFixture();
  const dir = join(fx.root, 'chat-model');
  if (!existsSync(dir)) {
    cpSync(fx.model, dir, { recursive: true });
    const f = join(dir, 'tokenizer_config.json');
    writeFileSync(f, JSON.stringify({ ...(JSON.parse(readFileSync(f, 'utf8')) as object), chat_template: TEMPLATE }));
  }
  return dir;
}

let trained: { run: string; adapter: string; data: string } | undefined;
async function trainChat(): Promise<{ run: string; adapter: string; data: string }> {
  if (trained) return trained;
  const fx = tinyFixture();
  const data = writeRecords('contract-chem.jsonl', taskRecords().chemicals as MedRecord[]);
  const run = join(fx.root, 'run-contract');
  const cfg = join(fx.root, 'contract.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      model: chatModel(),
      output_dir: run,
      data: { train: data, prompt_style: 'chat', max_length: 400 },
      lora: { r: 4, lora_alpha: 8 },
      training: { max_steps: 2, learning_rate: 0.01, per_device_train_batch_size: 2, save_steps: 1, logging_steps: 1 },
    }),
  );
  const r = await runCli(['train', '--config', cfg, '--quiet']);
  assert.equal(r.code, 0, r.err);
  trained = { run, adapter: join(run, 'adapter'), data };
  return trained;
}

test('train writes medlora_contract.json beside every adapter: prompt style, chat template, max_length, task, dtype, versions', async () => {
  const { run, adapter } = await trainChat();
  for (const dir of [adapter, join(run, 'checkpoint-1', 'adapter'), join(run, 'checkpoint-2', 'adapter')]) {
    assert.ok(existsSync(join(dir, 'adapter_config.json')), dir);
    assert.ok(existsSync(join(dir, CONTRACT_FILE)), `${dir}/${CONTRACT_FILE}`);
  }
  const c = readContract(adapter)!;
  assert.equal(c.schema, 'medlora.training-contract');
  assert.equal(c.schema_version, 1);
  assert.equal(
    c.medlora_version,
    (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version,
  );
  assert.equal(c.prompt?.style, 'chat');
  assert.equal(c.prompt?.chat_template?.text, TEMPLATE);
  assert.equal(c.prompt?.chat_template?.sha256, sha256(TEMPLATE));
  assert.equal(c.max_length, 400);
  assert.equal(c.overflow, 'drop');
  assert.equal(c.compute_dtype, 'f32');
  assert.equal(c.data_format, 'records');
  assert.deepEqual(c.tasks, [
    { name: 'chemicals', instruction: NER_INSTRUCTIONS.chemicals, records: 3, other_instructions: 0 },
  ]);
  assert.equal(c.base_model.path, chatModel());
  assert.equal(c.base_model.config_sha256, sha256(readFileSync(join(chatModel(), 'config.json'))));
  // PEFT's own file is untouched by the contract (PEFT ignores other files in the folder)
  const peft = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(peft.peft_type, 'LORA');
});

test('library: loadExtractor takes prompt style, max_length and chat template from the contract; explicit choices win with a warning', async () => {
  const { adapter } = await trainChat();
  const a = loadExtractor({ model: chatModel(), adapter });
  try {
    assert.equal(a.settings.prompt_style, 'chat');
    assert.equal(a.settings.max_length, 400);
    assert.deepEqual(a.settings.contract_tasks, ['chemicals']);
    assert.deepEqual(a.warnings, []);
    assert.equal(a.tok.chatTemplate, TEMPLATE);
  } finally {
    a.model.dispose();
  }
  const b = loadExtractor({ model: chatModel(), adapter, promptStyle: 'alpaca', maxLength: 600, tasks: ['diseases'] });
  try {
    assert.equal(b.settings.prompt_style, 'alpaca');
    assert.equal(b.settings.max_length, 600);
    assert.equal(b.warnings.length, 3, b.warnings.join('\n'));
    assert.match(
      b.warnings[0]!,
      /^prompt_style alpaca contradicts the adapter's training contract \(prompt_style chat in .*medlora_contract\.json\); using alpaca$/,
    );
    assert.match(b.warnings[1]!, /^max_length 600 contradicts .*\(max_length 400 /);
    assert.match(b.warnings[2]!, /^tasks diseases: the adapter was trained on chemicals only/);
  } finally {
    b.model.dispose();
  }
  // a plain PEFT adapter (no contract): today's defaults, no warning
  const fx = tinyFixture();
  const p = loadExtractor({ model: fx.model, adapter: fx.adapter });
  try {
    assert.equal(p.contract, null);
    assert.equal(p.settings.prompt_style, 'alpaca');
    assert.equal(p.settings.max_length, undefined);
    assert.deepEqual(p.warnings, []);
  } finally {
    p.model.dispose();
  }
});

test('eval and extract use the chat prompt with no flag; --prompt alpaca wins with one warning line', async () => {
  const { adapter, data } = await trainChat();
  const fx = tinyFixture();
  const out = join(fx.root, 'contract-eval');
  const r = await runCli([
    'eval',
    '--model',
    chatModel(),
    '--adapter',
    adapter,
    '--data',
    data,
    '--out',
    out,
    '--json',
    ...GEN,
  ]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  const s = JSON.parse(r.out) as { settings: { promptStyle: string; maxLength: number } };
  assert.equal(s.settings.promptStyle, 'chat');
  assert.equal(s.settings.maxLength, 400);
  const r2 = await runCli([
    'eval',
    '--model',
    chatModel(),
    '--adapter',
    adapter,
    '--data',
    data,
    '--out',
    `${out}-2`,
    '--json',
    '--prompt',
    'alpaca',
    ...GEN,
  ]);
  assert.equal(r2.code, 0, r2.err);
  assert.match(
    r2.err,
    /^warning: --prompt alpaca contradicts the adapter's training contract \(prompt_style chat in .*\); using alpaca$/,
  );
  assert.equal((JSON.parse(r2.out) as { settings: { promptStyle: string } }).settings.promptStyle, 'alpaca');

  // loss over task records: prompted as the contract says (equal to the explicit chat flags, unlike alpaca)
  const lossOf = async (extra: string[]): Promise<{ loss: number; err: string }> => {
    const l = await runCli(['loss', '--model', chatModel(), '--adapter', adapter, '--data', data, '--json', ...extra]);
    assert.equal(l.code, 0, l.err);
    return { loss: (JSON.parse(l.out) as { loss: number }).loss, err: l.err };
  };
  const lc = await lossOf([]);
  assert.equal(lc.err, '');
  assert.equal(lc.loss, (await lossOf(['--prompt', 'chat', '--max-length', '400'])).loss);
  const la = await lossOf(['--prompt', 'alpaca']);
  assert.notEqual(la.loss, lc.loss);
  assert.match(la.err, /^warning: --prompt alpaca contradicts/);

  // extract: no --task, no --prompt: the contract's task and chat prompt; the same answers as the library with chat
  const text = 'Cisplatin and lithium caused renal damage.';
  const e = await runCli(['extract', text, '--model', chatModel(), '--adapter', adapter, ...GEN]);
  assert.equal(e.code, 0, e.err);
  assert.equal(e.err, '');
  const got = JSON.parse(e.out) as { task: string; output: string; truncated: boolean };
  assert.equal(got.task, 'chemicals');
  assert.equal(typeof got.truncated, 'boolean');
  const lib = loadExtractor({ model: chatModel(), adapter });
  try {
    const chat = extract(lib.model, lib.tok, 'chemicals', [{ id: '1', text }], {
      promptStyle: 'chat',
      maxLength: 400,
      maxNewTokens: 24,
    }).results[0]!;
    const alpaca = extract(lib.model, lib.tok, 'chemicals', [{ id: '1', text }], {
      promptStyle: 'alpaca',
      maxLength: 400,
      maxNewTokens: 24,
    }).results[0]!;
    assert.equal(got.output, chat.output);
    // the check can fail: the alpaca prompt gives this model another answer
    assert.notEqual(alpaca.output, chat.output);
    console.log(
      `extract with the contract: ${JSON.stringify(got.output)}; chat ${JSON.stringify(chat.output)}; alpaca ${JSON.stringify(alpaca.output)}`,
    );
  } finally {
    lib.model.dispose();
  }
});

test('serve with the contract: chat prompt, the trained task, truncated in the HTTP JSON (the README NER serve line)', async () => {
  const { adapter } = await trainChat();
  const child = spawn(
    process.execPath,
    [
      join(packageRoot(), 'bin', 'medlora.js'),
      'serve',
      '--model',
      chatModel(),
      '--adapter',
      adapter,
      '--task',
      'chemicals',
      '--port',
      '0',
      '--json',
      '--max-new-tokens',
      '24',
    ],
    { env: { ...process.env, OMP_NUM_THREADS: '1' } },
  );
  let err = '';
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  try {
    const lines = createInterface({ input: child.stdout });
    const listening = await new Promise<{ url: string }>((resolve, reject) => {
      lines.on('line', (l) => {
        const j = JSON.parse(l) as { event: string; url: string };
        if (j.event === 'listening') resolve(j);
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    });
    const health = (await (await fetch(`${listening.url}/health`)).json()) as {
      prompt_style: string;
      max_length: number;
      tasks: string[];
    };
    assert.equal(health.prompt_style, 'chat');
    assert.equal(health.max_length, 400);
    assert.deepEqual(health.tasks, ['chemicals']);
    const res = await fetch(`${listening.url}/v1/extract`, {
      method: 'POST',
      body: JSON.stringify({ task: 'chemicals', text: 'Aspirin reduced fever.' }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { results: Array<{ finish_reason: string; truncated: boolean }> };
    assert.equal(typeof body.results[0]!.truncated, 'boolean');
    assert.equal(body.results[0]!.truncated, body.results[0]!.finish_reason !== 'eos');
    assert.equal(err.includes('warning'), false, err);
  } finally {
    child.kill('SIGINT');
    await new Promise((r) => child.on('exit', r));
  }
});

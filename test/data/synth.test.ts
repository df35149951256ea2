// `medlora data synth` against `medlora serve` itself over real HTTP (loopback) on the tiny random model: under a
// random model it is the json_schema constraint that makes every answer a valid {input, output} pair. The records
// then go through `data import ade-email` and `train`. A synth run killed mid-way resumes from its journal without
// re-sending the requests it had answered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../../src/util/paths.js';
import { setNumThreads } from '../../src/tensor/index.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { loadModel } from '../../src/model/load.js';
import { loadAdapter } from '../../src/adapt/peft-io.js';
import { createServer } from '../../src/serve/index.js';
import { TINY_CHAT_TEMPLATE, tinyFixture } from '../evalcli/tiny.js';

setNumThreads(1);
const BIN = join(packageRoot(), 'bin', 'medlora.js');
const fx = tinyFixture();
const work = mkdtempSync(join(tmpdir(), 'medlora-synth-'));
const template = join(work, 'template.txt');
writeFileSync(
  template,
  'Write adverse event reports for [DRUG NAME].\nSide effects:\n[DRUG SIDE EFFECTS]\nAnswer as JSON.\n',
);
const drugs = join(work, 'drugs.jsonl');
writeFileSync(
  drugs,
  `${JSON.stringify({ drug: 'Abilify', info: 'nausea, vomiting, dizziness' })}\n${JSON.stringify({ drug: 'Lipitor', info: 'muscle pain' })}\n`,
);
// the tiny fixture model says max_position_embeddings 128, shorter than an ade-email training prompt (about 314
// tokens with its 300-token vocabulary); a copy that declares 2048 (RoPE has no learned positions) serves and trains
const longModel = join(work, 'model-2048');
cpSync(fx.model, longModel, { recursive: true });
writeFileSync(
  join(longModel, 'config.json'),
  JSON.stringify({
    ...(JSON.parse(readFileSync(join(fx.model, 'config.json'), 'utf8')) as object),
    max_position_embeddings: 2048,
  }),
);
const chatTpl = join(work, 'chat.jinja');
writeFileSync(chatTpl, TINY_CHAT_TEMPLATE);

/** `medlora serve` in a child process; resolves with its URL once listening. */
function serve(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--model', longModel, '--port', '0', '--json', '--threads', '1', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start in 60 s: ${err}`));
    }, 60_000);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const e = JSON.parse(l) as { event: string; url?: string };
      if (e.event === 'listening') {
        clearTimeout(timer);
        resolve({ url: e.url!, child });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}: ${err}`));
    });
  });
}

const medlora = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 180_000 });

test('data synth against medlora serve: schema-valid records that data import and train consume', async () => {
  const { url, child } = await serve([
    '--adapter',
    `ade=${fx.adapter}`,
    '--chat-template',
    chatTpl,
    '--max-new-tokens',
    '160',
  ]);
  const out = join(work, 'synth.json');
  try {
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(
        process.execPath,
        [
          BIN,
          'data',
          'synth',
          '--template',
          template,
          '--drugs',
          drugs,
          '--endpoint',
          `${url}/v1`,
          '--model',
          'ade',
          '--out',
          out,
          '--per-drug',
          '2',
          '--reports',
          '2',
          '--max-tokens',
          '120',
          '--temperature',
          '0.8',
          '--seed',
          '3',
          '--concurrency',
          '2',
          '--json',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let so = '',
        se = '';
      c.stdout.on('data', (x: Buffer) => {
        so += x.toString();
      });
      c.stderr.on('data', (x: Buffer) => {
        se += x.toString();
      });
      c.on('exit', (status) => resolve({ status, stdout: so, stderr: se }));
    });
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { requests: number; sent: number; records: number; invalid: number };
    console.log(`synth summary: ${JSON.stringify(s)}`);
    assert.equal(s.requests, 4);
    assert.equal(s.sent, 4);
    // under a random model only the json_schema constraint makes answers valid: every journaled reply is checked here
    // by hand (the synth's own checks are not the reference); a blank-but-valid input may still be dropped as invalid
    const journal = readFileSync(`${out}.journal.jsonl`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { drug: string; content: string });
    assert.equal(journal.length, 4);
    for (const e of journal) {
      const v = JSON.parse(e.content) as {
        reports: Array<{ input: unknown; output: { drug_name: unknown; adverse_events: unknown } }>;
      };
      assert.deepEqual(Object.keys(v), ['reports']);
      assert.ok(v.reports.length >= 1 && v.reports.length <= 2, e.content);
      for (const r of v.reports) {
        assert.deepEqual(Object.keys(r), ['input', 'output']);
        assert.ok(typeof r.input === 'string' && r.input.length >= 1);
        assert.equal(r.output.drug_name, e.drug, 'drug_name pinned to the requested drug');
        assert.ok(
          Array.isArray(r.output.adverse_events) &&
            r.output.adverse_events.length >= 1 &&
            r.output.adverse_events.every((x) => typeof x === 'string' && x.length >= 1),
        );
      }
    }
    assert.ok(s.records >= 4, 'at least one report per request');
  } finally {
    child.kill('SIGTERM');
  }
  const recs = JSON.parse(readFileSync(out, 'utf8')) as Array<{
    input: string;
    output: { drug_name: string; adverse_events: string[] };
    provenance: Record<string, unknown>;
  }>;
  const tplSha = (await import('node:crypto')).createHash('sha256').update(readFileSync(template)).digest('hex');
  for (const x of recs) {
    assert.ok(typeof x.input === 'string' && x.input.trim() !== '');
    assert.ok(['Abilify', 'Lipitor'].includes(x.output.drug_name));
    assert.ok(x.output.adverse_events.length >= 1 && x.output.adverse_events.every((e) => typeof e === 'string'));
    assert.equal(x.provenance.template_sha256, tplSha);
    assert.equal(x.provenance.model, 'ade');
    assert.equal(x.provenance.drug, x.output.drug_name);
    assert.equal(typeof x.provenance.seed, 'number');
  }
  assert.equal(new Set(recs.map((x) => x.input)).size, recs.length, 'de-duplicated');
  const jsonl = join(work, 'records.jsonl');
  let r = medlora(['data', 'import', 'ade-email', out, '--out', jsonl, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { records: number }).records, recs.length);
  writeFileSync(
    join(work, 'cfg.yaml'),
    [
      `model: ${longModel}`,
      `output_dir: ${join(work, 'run')}`,
      `data: { train: ${jsonl}, max_length: 1024 }`,
      'lora: { r: 2, lora_alpha: 4, target_modules: [q_proj, v_proj] }',
      'training: { learning_rate: 1.0e-3, max_steps: 2, per_device_train_batch_size: 2, logging_steps: 1, save_steps: null }',
      '',
    ].join('\n'),
  );
  r = medlora(['train', '--config', join(work, 'cfg.yaml'), '--threads', '1', '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  const losses = readFileSync(join(work, 'run', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { loss?: number }).loss)
    .filter((x) => x !== undefined);
  assert.ok(losses.length >= 1 && losses.every((x) => Number.isFinite(x)), `finite losses ${losses.join(' ')}`);
});

test('a killed synth run resumes from its journal without re-sending answered requests', async () => {
  const tok = loadTokenizer(fx.model, { chatTemplate: TINY_CHAT_TEMPLATE });
  const m = loadModel(longModel);
  loadAdapter(m, fx.adapter);
  // a long batch window keeps each request around 150 ms, so the run is still going when it is killed
  const h = await createServer({ model: m, tok, modelName: 'ade', port: 0, maxNewTokens: 160, batchWindowMs: 150 });
  const out = join(work, 'resume.json');
  const journal = `${out}.journal.jsonl`;
  const args = [
    'data',
    'synth',
    '--template',
    template,
    '--drugs',
    drugs,
    '--endpoint',
    `${h.url}/v1`,
    '--model',
    'ade',
    '--out',
    out,
    '--per-drug',
    '4',
    '--reports',
    '1',
    '--max-tokens',
    '120',
    '--temperature',
    '0.7',
    '--concurrency',
    '1',
    '--json',
  ];
  const lines = (): number =>
    existsSync(journal)
      ? readFileSync(journal, 'utf8')
          .split('\n')
          .filter((l) => l.trim()).length
      : 0;
  try {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
    // kill it (SIGKILL: no clean-up) once two requests are journaled; bounded wait
    await new Promise<void>((resolve, reject) => {
      let n = 0;
      const t = setInterval(() => {
        if (lines() >= 2) {
          clearInterval(t);
          child.kill('SIGKILL');
          resolve();
        } else if (++n > 1200) {
          clearInterval(t);
          child.kill('SIGKILL');
          reject(new Error('no journal lines within 60 s'));
        }
      }, 50);
      child.on('exit', () => {
        clearInterval(t);
        resolve();
      });
    });
    await new Promise((r) => setTimeout(r, 300));
    const journaled = lines();
    const sentFirst = h.stats().completion_requests;
    assert.ok(journaled >= 2 && journaled < 8, `killed mid-run (${journaled} of 8 journaled)`);
    assert.ok(!existsSync(out), 'no output yet');
    // in flight at the kill: at most --concurrency requests were answered but not journaled
    assert.ok(sentFirst - journaled <= 1, `first run: ${sentFirst} sent, ${journaled} journaled`);
    const c2 = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
      let so = '';
      c.stdout.on('data', (x: Buffer) => {
        so += x.toString();
      });
      c.on('exit', (code) => resolve({ code, stdout: so }));
    });
    assert.equal(c2.code, 0);
    const s = JSON.parse(c2.stdout) as { requests: number; sent: number; resumed: number; records: number };
    const sentSecond = h.stats().completion_requests - sentFirst;
    console.log(
      `resume: killed after ${journaled} journaled (${sentFirst} sent); resumed run sent ${sentSecond}: ${JSON.stringify(s)}`,
    );
    assert.equal(s.requests, 8);
    assert.equal(s.resumed, journaled);
    assert.equal(s.sent, 8 - journaled);
    assert.equal(sentSecond, 8 - journaled, 'only the requests missing from the journal were sent again');
    const keys = readFileSync(journal, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => (JSON.parse(l) as { key: string }).key);
    assert.equal(new Set(keys).size, 8, 'every request journaled once');
    assert.ok(s.records >= 1);
  } finally {
    await h.close();
    m.dispose();
  }
});

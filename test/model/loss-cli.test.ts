// `medlora loss` end to end (spawned CLI: real exit codes and output) on every reference folder's batch.json rows,
// with and without the fixture's adapter, and its bad-input errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { parseArgs } from '../../src/cli/command.js';
import { lossCommand } from '../../src/cli/commands/loss.js';
import { flagWorded } from '../../src/cli/flag-words.js';
import { MedloraError } from '../../src/util/errors.js';
import { assertClose } from '../../src/util/close.js';
import { REFERENCE_FOLDERS, refBatch, refDir, refExpected, skipNoShared, tolerances } from './fixtures.js';

function medlora(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'medlora.js'), ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Run the command in-process (no engine start-up per call); returns what it printed. */
async function inProcess(...args: string[]): Promise<string> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => {
    lines.push(a.map(String).join(' '));
  };
  try {
    await lossCommand.run(parseArgs(lossCommand, args));
  } finally {
    console.log = orig;
  }
  return lines.join('\n');
}

function rowsFile(dir: string, name: string): string {
  const { raw } = refBatch(name);
  const f = join(dir, `${name}.jsonl`);
  writeFileSync(
    f,
    raw.input_ids.map((ids, i) => JSON.stringify({ input_ids: ids, labels: raw.labels[i] })).join('\n') + '\n',
  );
  return f;
}

test('medlora loss --json (spawned) matches expected.json', { skip: skipNoShared }, () => {
  const d = mkdtempSync(join(tmpdir(), 'medlora-loss-'));
  try {
    const r = medlora('loss', '--model', refDir('llama-tiny'), '--data', rowsFile(d, 'llama-tiny'), '--json');
    assert.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out.trim()) as { loss: number; perplexity: number; tokens: number; rows: number };
    assertClose([j.loss], [refExpected('llama-tiny').loss], { atol: 1e-4, label: 'llama-tiny CLI loss' });
    const bad = medlora('loss', '--model', refDir('llama-tiny'), '--data', join(d, 'missing.jsonl'));
    assert.equal(bad.code, 1);
    assert.match(bad.err, /missing\.jsonl: no such file/);
    assert.ok(!bad.err.includes('    at '), `no stack trace expected:\n${bad.err}`);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test(
  'medlora loss matches expected.json on every reference folder (batch size 1 and 2)',
  { skip: skipNoShared },
  async () => {
    const d = mkdtempSync(join(tmpdir(), 'medlora-loss-'));
    try {
      for (const name of REFERENCE_FOLDERS) {
        const f = rowsFile(d, name);
        const { raw } = refBatch(name);
        const want = raw.labels.reduce((a, row) => a + row.slice(1).filter((x) => x !== -100).length, 0);
        for (const bs of ['1', '2']) {
          const j = JSON.parse(await inProcess('--model', refDir(name), '--data', f, '--json', '--batch-size', bs)) as {
            loss: number;
            perplexity: number;
            tokens: number;
            rows: number;
          };
          assertClose([j.loss], [refExpected(name).loss], {
            atol: tolerances(name).loss,
            label: `${name} CLI loss (batch ${bs})`,
          });
          assertClose([j.perplexity], [Math.exp(refExpected(name).loss)], {
            rtolMaxAbs: 1e-3,
            label: `${name} perplexity`,
          });
          assert.equal(j.tokens, want);
          assert.equal(j.rows, 2);
        }
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  },
);

test(
  'medlora loss --adapter matches loss_lora (batch.json itself as the data: one line, two rows)',
  { skip: skipNoShared },
  async () => {
    for (const name of ['llama-tiny', 'gpt2-tiny', 'qwen2-tiny']) {
      const out = await inProcess(
        '--model',
        refDir(name),
        '--adapter',
        join(refDir(name), 'adapter'),
        '--data',
        join(refDir(name), 'batch.json'),
        '--json',
      );
      const j = JSON.parse(out) as { loss: number };
      assertClose([j.loss], [refExpected(name).loss_lora], { atol: 1e-4, label: `${name} CLI loss with adapter` });
    }
  },
);

test('medlora loss: bad rows, options and files are clear errors', { skip: skipNoShared }, async () => {
  const d = mkdtempSync(join(tmpdir(), 'medlora-loss-'));
  try {
    const model = refDir('llama-tiny');
    const cases: Array<[string, string, RegExp]> = [
      [
        'big-id.jsonl',
        '{"input_ids": [1, 2, 999], "labels": [1, 2, 3]}\n',
        /big-id\.jsonl:1: input_ids\[2\] = 999 is not a token id in \[0, 256\)/,
      ],
      [
        'bad-label.jsonl',
        '{"input_ids": [1, 2, 3], "labels": [1, -5, 3]}\n',
        /labels\[1\] = -5 is neither -100 nor a token id/,
      ],
      [
        'length.jsonl',
        '\n{"input_ids": [1, 2, 3], "labels": [1, 2]}\n',
        /length\.jsonl:2: "labels" must be an array as long as "input_ids" \(3\)/,
      ],
      ['not-json.jsonl', '{"input_ids": [1, 2, 3]}\n{oops\n', /not-json\.jsonl:2: invalid JSON/],
      ['neither.jsonl', '{"text": "hello"}\n', /neither\.jsonl:1: neither a pre-tokenized row/],
      ['padded.jsonl', '{"input_ids": [1, 2, 3], "attention_mask": [1, 1, 0]}\n', /"attention_mask" has padding/],
      ['all-masked.jsonl', '{"input_ids": [1, 2, 3], "labels": [-100, -100, -100]}\n', /no token counts/],
      ['empty.jsonl', '', /is empty|no rows/],
    ];
    const fails = async (args: string[], re: RegExp): Promise<void> => {
      await assert.rejects(inProcess(...args), (e: unknown) => {
        assert.ok(e instanceof MedloraError, `expected a MedloraError, got ${String(e)}`);
        // as the CLI prints it (main.ts): library field names turned into this command's flags
        const printed = flagWorded(lossCommand, e);
        console.log(`  error: ${printed}`);
        assert.match(printed, re);
        return true;
      });
    };
    for (const [f, body, re] of cases) {
      writeFileSync(join(d, f), body);
      await fails(['--model', model, '--data', join(d, f)], re);
    }
    await fails(['--model', model, '--data', join(d, 'big-id.jsonl'), '--dtype', 'f8'], /--dtype must be f32 or bf16/);
    await fails(['--model', d, '--data', join(d, 'big-id.jsonl')], /config\.json: not found/);
    await fails(['--model', model, '--data', join(d, 'bad-label.jsonl'), '--batch-size', '0'], /labels\[1\]/);
    writeFileSync(join(d, 'ok.jsonl'), '{"input_ids": [1, 2, 3]}\n');
    await fails(
      ['--model', model, '--data', join(d, 'ok.jsonl'), '--batch-size', '0'],
      /--batch-size must be a positive integer/,
    );
    await fails(['--model', model, '--data', join(d, 'ok.jsonl'), '--adapter', d], /adapter_config\.json/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test(
  'medlora loss on canonical task records equals the same records pre-tokenized with src/data encode',
  { skip: skipNoShared },
  async () => {
    const d = mkdtempSync(join(tmpdir(), 'medlora-loss-'));
    try {
      const { trainBpe, writeTrainedTokenizer } = await import('../../src/tokenize/bpe-train.js');
      const { loadTokenizer } = await import('../../src/tokenize/tokenizer.js');
      const { encodeRecord } = await import('../../src/data/encode.js');
      const { generateDemoCorpus } = await import('../../src/data/demo-corpus.js');
      // gpt2-tiny with its 64 learned positions extended to 512 (zero rows appended) so alpaca prompts fit
      const { openCheckpoint, readAll, writeSafetensors } = await import('../../src/io/safetensors.js');
      const w = readAll(openCheckpoint(refDir('gpt2-tiny')));
      const wpe = w['transformer.wpe.weight']!;
      const grown = new Uint8Array(512 * wpe.shape[1]! * 4);
      grown.set(wpe.data);
      w['transformer.wpe.weight'] = { dtype: 'F32', shape: [512, wpe.shape[1]!], data: grown };
      writeSafetensors(join(d, 'model.safetensors'), w);
      const cfg = JSON.parse(readFileSync(join(refDir('gpt2-tiny'), 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, n_positions: 512 }));
      const records = generateDemoCorpus({ count: 5, seed: 1 });
      writeTrainedTokenizer(
        d,
        trainBpe(
          records.map((r) => r.input),
          { vocabSize: 300, minFrequency: 1 },
        ),
      );
      const recFile = join(d, 'records.jsonl');
      writeFileSync(recFile, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const tok = loadTokenizer(d);
      const rows = records.map((r) => {
        const e = encodeRecord(r, tok, { style: 'alpaca', overflow: 'error', maxLength: 400 });
        assert.ok(e.ok);
        return { input_ids: e.example.input_ids, labels: e.example.labels };
      });
      const tokFile = join(d, 'rows.jsonl');
      writeFileSync(tokFile, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const a = JSON.parse(
        await inProcess('--model', d, '--data', recFile, '--json', '--batch-size', '3', '--max-length', '400'),
      ) as { loss: number; tokens: number; rows: number };
      const b = JSON.parse(await inProcess('--model', d, '--data', tokFile, '--json', '--batch-size', '1')) as {
        loss: number;
        tokens: number;
        rows: number;
      };
      assert.equal(a.rows, 5);
      // a max length the answer cannot fit in: the encoder's clear error, naming the record
      await assert.rejects(
        inProcess('--model', d, '--data', recFile, '--max-length', '20'),
        /record demo-\d+: .*exceed max_length 20/,
      );
      // tokens scored = answer tokens + EOS per record, counted from the encoder's labels
      assert.equal(
        a.tokens,
        rows.reduce((s, r) => s + r.labels.slice(1).filter((x) => x !== -100).length, 0),
      );
      assertClose([a.loss], [b.loss], { atol: 1e-5, label: 'records vs pre-tokenized loss' });
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  },
);

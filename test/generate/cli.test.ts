// `medlora generate` end to end: greedy ids from stories260K-hf through the spawned CLI equal transformers' ids;
// text prompts with a tokenizer; option errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, sharedPath } from '../../src/util/paths.js';
import { parseArgs } from '../../src/cli/command.js';
import { generateCommand } from '../../src/cli/commands/generate.js';
import { MedloraError } from '../../src/util/errors.js';
import { trainBpe, writeTrainedTokenizer } from '../../src/tokenize/bpe-train.js';
import { refDir, skipNoShared } from '../model/fixtures.js';

function medlora(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'medlora.js'), ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

async function inProcess(...args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => {
    lines.push(a.map(String).join(' '));
  };
  try {
    await generateCommand.run(parseArgs(generateCommand, args));
  } finally {
    console.log = orig;
  }
  return lines;
}

test(
  "medlora generate --ids --json (spawned): stories260K greedy ids equal transformers'",
  { skip: skipNoShared },
  () => {
    const dir = sharedPath('fixtures', 'hf', 'stories260K-hf');
    const exp = JSON.parse(readFileSync(join(dir, 'expected_generation.json'), 'utf8')) as {
      greedy: Array<{ prompt_ids: number[]; greedy_new_ids: number[] }>;
    };
    const r = medlora(
      'generate',
      '--model',
      dir,
      '--ids',
      exp.greedy[0]!.prompt_ids.join(','),
      '--ids',
      exp.greedy[1]!.prompt_ids.join(','),
      '--max-new-tokens',
      '40',
      '--json',
    );
    assert.equal(r.code, 0, r.err);
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { ids: number[]; finish_reason: string });
    assert.equal(lines.length, 2);
    lines.forEach((l, i) => assert.deepEqual(l.ids, exp.greedy[i]!.greedy_new_ids.slice(0, 40)));
    // no tokenizer in that folder: a text prompt is a clear error, exit 1
    const t = medlora('generate', '--model', dir, '--prompt', 'Once');
    assert.equal(t.code, 1);
    assert.match(t.err, /no tokenizer\.json/);
  },
);

test('medlora generate with a text prompt, stop string and options', { skip: skipNoShared }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'medlora-gencli-'));
  try {
    copyFileSync(join(refDir('gpt2-tiny'), 'config.json'), join(dir, 'config.json'));
    copyFileSync(join(refDir('gpt2-tiny'), 'model.safetensors'), join(dir, 'model.safetensors'));
    writeTrainedTokenizer(
      dir,
      trainBpe(['aspirin causes bleeding', 'warfarin interacts with aspirin'], { vocabSize: 300, minFrequency: 1 }),
    );
    const [line] = await inProcess('--model', dir, '--prompt', 'aspirin', '--max-new-tokens', '8', '--json');
    const j = JSON.parse(line!) as { prompt: string; text: string; ids: number[]; finish_reason: string };
    assert.equal(j.prompt, 'aspirin');
    assert.ok(j.ids.length <= 8);
    const fails = async (args: string[], re: RegExp): Promise<void> => {
      await assert.rejects(inProcess(...args), (e: unknown) => e instanceof MedloraError && re.test(e.message));
    };
    await fails(['--model', dir], /give --prompt TEXT/);
    await fails(['--model', dir, '--prompt', 'a', '--ids', '1'], /either --prompt or --ids/);
    await fails(['--model', dir, '--ids', '1,x'], /--ids expects comma-separated token ids/);
    await fails(['--model', dir, '--prompt', 'a', '--top-p', '2'], /top-p must be in \(0, 1\]/);
    await fails(['--model', dir, '--prompt', 'a', '--dtype', 'f64'], /--dtype must be f32 or bf16/);
    await fails(['--model', dir, '--prompt', 'a', '--chat'], /chat template/i);
    await fails(['--model', dir, '--prompt', 'a', '--adapter', dir], /adapter_config\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Docs that run: EVERY command block of README.md (```bash / ```sh / ```js) and every `--help` example
// (CommandSpec.examples) is executed, in order, in one scratch folder, against tiny fixtures, so a documented command
// cannot rot. New blocks are picked up automatically; a failure names the block (README line) and the command.
//
// Substitution table (applied to every command and code block before it runs):
//   ~/models/NAME                         -> <scratch>/models/NAME, made on first use by
//                                            `medlora init --like llama-tiny --tokenizer ../shared/fixtures/hf/SmolLM2-135M-Instruct`
//                                            (a chat template, so chat-prompt presets work)
//   ../shared/                            -> the shared fixtures folder ($MEDLORA_SHARED or ../shared)
//   drugbank-ddi-sentences/...            -> a cut of ../shared/corpora/drugbank-ddi-sentences (first 300 lines per file)
//   CDR_Data/CDR.Corpus.v010516/...       -> a cut of ../shared/corpora/bc5cdr (first 8 PubTator documents per file)
//   medlora-demo/...                      -> a demo run folder made on first use by `medlora demo --steps 2 --records 200`
//   medlora | node bin/medlora.js         -> node <checkout>/bin/medlora.js
//   configs/, test/fixtures/              -> links to this checkout's folders in the scratch folder (paths relative
//                                            to the repository root, as `node bin/medlora.js` commands are written)
//   localhost:8080 / 127.0.0.1:8080       -> the port of the `medlora serve` started earlier in the same block
//   `import ... from 'medlora'` (js)      -> node_modules/medlora in the scratch folder links this checkout
// Per-command flags appended to keep it fast on 2 cores (appended flags win over the documented ones): see FAST.
// Exempt: commands running scripts/setup.sh or `npm test` (the fresh-machine commands; .ci/run runs them), and other
// projects' tools the README shows for deployment (llama-cli, ollama: not installed here; test/export checks the files
// with llama.cpp itself).
// `medlora serve` runs in the background (--port 0) until its block ends; its /health must answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commands } from '../src/cli/commands/index.js';
import { hasShared, packageRoot, sharedPath } from '../src/util/paths.js';

const root = packageRoot();
const BIN = join(root, 'bin', 'medlora.js');

/** Flags appended per command (the first words after `medlora`): tiny runs of the documented commands. */
const FAST: Record<string, string[]> = {
  train: [
    '--max_steps',
    '2',
    '--save_steps',
    'null',
    '--eval_steps',
    'null',
    '--logging_steps',
    '1',
    '--per_device_train_batch_size',
    '2',
    '--gradient_accumulation_steps',
    '1',
    '--eval_generate_steps',
    'null',
    '--quiet',
  ],
  eval: ['--limit', '3', '--max-new-tokens', '16', '--batch-size', '4', '--quiet'],
  extract: ['--max-new-tokens', '16', '--quiet'],
  generate: ['--max-new-tokens', '8'],
  serve: ['--port', '0'],
  demo: ['--steps', '2', '--records', '200', '--quiet'],
};
const EXEMPT = [/scripts\/setup\.sh/, /^npm test\b/, /^llama-cli\b/, /^ollama\b/];

export interface Block {
  line: number;
  lang: string;
  text: string;
}

/** Fenced code blocks of a markdown text (outside the generated CLI reference), with their 1-based opening line. */
export function codeBlocks(md: string): Block[] {
  const out: Block[] = [];
  const lines = md.split('\n');
  let open: Block | undefined;
  let inReference = false;
  lines.forEach((l, i) => {
    if (l.startsWith('<!-- cli-reference:begin')) inReference = true;
    if (l.startsWith('<!-- cli-reference:end')) inReference = false;
    const fence = /^```(\S*)\s*$/.exec(l);
    if (fence && !open) {
      open = { line: i + 1, lang: fence[1]!, text: '' };
      return;
    }
    if (fence && open) {
      if (!inReference) out.push(open);
      open = undefined;
      return;
    }
    if (open) open.text += `${l}\n`;
  });
  return out;
}

/** Shell-like words of one command line: quotes group, a # after whitespace starts a comment. */
export function words(line: string): string[] {
  const out: string[] = [];
  let cur = '',
    quote = '',
    has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = '';
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      has = true;
      continue;
    }
    if (c === '#' && !has && cur === '') break;
    if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = '';
      has = false;
      continue;
    }
    cur += c;
    has = true;
  }
  if (quote) throw new Error(`unclosed quote in: ${line}`);
  if (has || cur) out.push(cur);
  return out;
}

/** Command lines of a shell block: comments and blank lines dropped, backslash continuations joined. */
export function commandLines(text: string): string[] {
  // split at newlines outside quotes (a quoted JSON body may span lines)
  const lines: string[] = [];
  let cur = '',
    quote = '',
    comment = false;
  for (const c of text.replace(/\\\n/g, ' ')) {
    if (comment) {
      if (c === '\n') comment = false;
      continue;
    }
    if (!quote && c === '#' && cur.trim() === '') {
      comment = true;
      cur = '';
      continue;
    }
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '\n') {
      lines.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  lines.push(cur);
  return lines.map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** A cut of a corpus folder: small files copied, large ones truncated (PubTator: whole documents). */
function cutCorpus(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) {
    const p = join(from, f);
    if (!statSync(p).isFile()) continue;
    const text = readFileSync(p, 'utf8');
    let cut = text;
    if (text.length > 64_000) {
      cut = /^\d+\|t\|/m.test(text)
        ? text
            .split(/\n\s*\n/)
            .slice(0, 8)
            .join('\n\n') + '\n\n'
        : text.split('\n').slice(0, 300).join('\n') + '\n';
    }
    writeFileSync(join(to, f), cut);
  }
}

test(
  'every README command block and --help example runs against tiny fixtures',
  { skip: !hasShared() && 'needs ../shared', timeout: 1_500_000 },
  async () => {
    const work = mkdtempSync(join(tmpdir(), 'medlora-readme-'));
    symlinkSync(join(root, 'configs'), join(work, 'configs'));
    mkdirSync(join(work, 'test'));
    symlinkSync(join(root, 'test', 'fixtures'), join(work, 'test', 'fixtures'));
    mkdirSync(join(work, 'node_modules'));
    symlinkSync(root, join(work, 'node_modules', 'medlora'));
    // the checkout's packages too (a README example may import a client library, e.g. openai)
    for (const d of readdirSync(join(root, 'node_modules')))
      if (d !== 'medlora' && !d.startsWith('.'))
        symlinkSync(join(root, 'node_modules', d), join(work, 'node_modules', d));
    const shared = sharedPath();
    const made = new Set<string>();
    const subst = (s: string): string =>
      s
        .replace(/~\/models\/([\w.-]+)/g, (_, name: string) => {
          const dir = join(work, 'models', name);
          if (!made.has(dir)) {
            made.add(dir);
            const r = spawnSync(
              process.execPath,
              [
                BIN,
                'init',
                '--like',
                'llama-tiny',
                '--tokenizer',
                join(shared, 'fixtures', 'hf', 'SmolLM2-135M-Instruct'),
                '--out',
                dir,
              ],
              { encoding: 'utf8' },
            );
            assert.equal(r.status, 0, `making the fixture model for ~/models/${name}: ${r.stderr}`);
          }
          return dir;
        })
        .replace(/(^|[\s'"=])medlora-demo\//g, (_, pre: string) => {
          const dir = join(work, 'medlora-demo');
          if (!made.has(dir)) {
            made.add(dir);
            const r = spawnSync(process.execPath, [BIN, 'demo', '--out', dir, ...FAST.demo!], { encoding: 'utf8' });
            assert.equal(r.status, 0, `making the demo run folder for medlora-demo/: ${r.stderr}`);
          }
          return `${pre}${dir}/`;
        })
        .replace(/(^|[\s'"=])\.\.\/shared\//g, (_, pre: string) => `${pre}${shared}/`)
        .replace(/(^|[\s'"=])drugbank-ddi-sentences\//g, (_, pre: string) => {
          if (!existsSync(join(work, 'corpora', 'drugbank')))
            cutCorpus(join(shared, 'corpora', 'drugbank-ddi-sentences'), join(work, 'corpora', 'drugbank'));
          return `${pre}${join(work, 'corpora', 'drugbank')}/`;
        })
        .replace(/(^|[\s'"=])CDR_Data\/CDR\.Corpus\.v010516\//g, (_, pre: string) => {
          if (!existsSync(join(work, 'corpora', 'bc5cdr')))
            cutCorpus(join(shared, 'corpora', 'bc5cdr'), join(work, 'corpora', 'bc5cdr'));
          return `${pre}${join(work, 'corpora', 'bc5cdr')}/`;
        });

    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    // a command block without a runnable language label would escape this test: refuse it
    for (const b of codeBlocks(readme)) {
      if (
        !['bash', 'sh', 'shell', 'js', 'javascript', 'mjs'].includes(b.lang) &&
        /^\s*(\$ )?(medlora|node bin\/medlora\.js) /m.test(b.text)
      ) {
        assert.fail(
          `README.md block at line ${b.line} (\`\`\`${b.lang}) holds medlora commands: label it \`\`\`bash so this test runs it`,
        );
      }
    }
    const blocks: Array<Block & { source: string }> = codeBlocks(readme)
      .filter((b) => ['bash', 'sh', 'shell', 'js', 'javascript', 'mjs'].includes(b.lang))
      .map((b) => ({ ...b, source: `README.md block at line ${b.line}` }));
    for (const c of commands)
      for (const e of c.examples ?? [])
        blocks.push({ line: 0, lang: 'bash', text: `${e}\n`, source: `medlora ${c.name} --help example` });
    assert.ok(blocks.length >= 4, 'README command blocks found');
    let ran = 0;
    const fail = (where: string, cmd: string, r: { status: number | null; stdout: string; stderr: string }): never =>
      assert.fail(
        `${where}: \`${cmd}\` exited ${r.status}\n--- stderr (tail) ---\n${r.stderr.slice(-2000)}\n--- stdout (tail) ---\n${r.stdout.slice(-1000)}`,
      );

    // a `medlora serve` started in one block stays up for the following blocks that talk to it (they name
    // 127.0.0.1:8080 or localhost:8080, e.g. an openai-client example after the curl block) and stops before any other
    let server: { child: ChildProcess; port: string } | undefined;
    const stopServer = async (): Promise<void> => {
      if (!server) return;
      const { child } = server;
      server = undefined;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    };
    const withPort = (text: string): string =>
      text.replace(/(localhost|127\.0\.0\.1):8080/g, `127.0.0.1:${server?.port ?? '8080'}`);
    try {
      for (const b of blocks) {
        if (!/(localhost|127\.0\.0\.1):8080/.test(b.text)) await stopServer();
        if (['js', 'javascript', 'mjs'].includes(b.lang)) {
          const file = join(work, `block-${b.line}.mjs`);
          writeFileSync(file, withPort(subst(b.text)));
          const t0 = performance.now();
          const r = spawnSync(process.execPath, [file], { cwd: work, encoding: 'utf8' });
          console.log(
            `  ${b.source}: node (js, ${b.text.split('\n').length} lines) ${r.status === 0 ? 'ok' : 'FAILED'} in ${((performance.now() - t0) / 1e3).toFixed(1)} s`,
          );
          if (r.status !== 0) fail(b.source, `node ${file}`, r);
          ran++;
          continue;
        }
        {
          for (const line of commandLines(b.text)) {
            if (EXEMPT.some((re) => re.test(line))) {
              console.log(
                `  ${b.source}: exempt (fresh-machine command run by CI, or another project's tool): ${line}`,
              );
              continue;
            }
            if (/^kill %\d+\b/.test(line.trim())) {
              // the README stops the background `medlora serve` of its block with job control
              await stopServer();
              console.log(`  ${b.source}: ${line} -> server stopped`);
              continue;
            }
            let w = words(withPort(subst(line)));
            if (w[0] === 'node' && w[1] === 'bin/medlora.js') w = ['medlora', ...w.slice(2)];
            const t0 = performance.now();
            if (w[0] !== 'medlora') {
              // another tool (curl, ...): through bash, with the block's server port
              const cmd = withPort(subst(line));
              const r = spawnSync('bash', ['-c', cmd], { cwd: work, encoding: 'utf8' });
              console.log(
                `  ${b.source}: ${line.slice(0, 100)} -> ${r.status} in ${((performance.now() - t0) / 1e3).toFixed(1)} s`,
              );
              if (r.status !== 0) fail(b.source, line, r);
              ran++;
              continue;
            }
            const name = commands
              .filter((c) => c.name.split(' ').every((x, i) => w[1 + i] === x))
              .sort((a, c) => c.name.length - a.name.length)[0]?.name;
            const args = [...w.slice(1), ...(name ? (FAST[name] ?? []) : [])];
            if (name === 'serve') {
              await stopServer();
              const child = spawn(process.execPath, [BIN, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
              let err = '';
              child.stderr!.setEncoding('utf8').on('data', (d: string) => {
                err += d;
              });
              const port = await new Promise<string>((res, rej) => {
                const timer = setInterval(() => {
                  const m = /listening on http:\/\/[^:\s]+:(\d+)/.exec(err);
                  if (m) {
                    clearInterval(timer);
                    res(m[1]!);
                  }
                }, 100);
                child.on('exit', (code) => {
                  clearInterval(timer);
                  rej(new Error(`${b.source}: \`${line}\` exited ${code} before listening:\n${err.slice(-2000)}`));
                });
              });
              server = { child, port };
              const health = await fetch(`http://127.0.0.1:${port}/health`);
              console.log(`  ${b.source}: ${line.slice(0, 100)} -> listening on ${port}, /health ${health.status}`);
              assert.equal(health.status, 200, `${b.source}: ${line}: GET /health`);
              ran++;
              continue;
            }
            const r = spawnSync(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8', maxBuffer: 64 << 20 });
            console.log(
              `  ${b.source}: ${line.slice(0, 110)} -> ${r.status} in ${((performance.now() - t0) / 1e3).toFixed(1)} s`,
            );
            if (r.status !== 0) fail(b.source, `medlora ${args.join(' ')}`, r);
            ran++;
          }
        }
      }
    } finally {
      await stopServer();
    }
    console.log(`  ran ${ran} documented commands / code blocks`);
  },
);

test('the block extractor: fences, comments, quotes, continuations', () => {
  const md = 'x\n```bash\n# c\nmedlora a "b c" \\\n  --d e   # note\n```\n```\nout\n```\n';
  const b = codeBlocks(md);
  assert.deepEqual(
    b.map((x) => [x.line, x.lang]),
    [
      [2, 'bash'],
      [7, ''],
    ],
  );
  assert.deepEqual(commandLines(b[0]!.text).map(words), [['medlora', 'a', 'b c', '--d', 'e']]);
  assert.deepEqual(words('say "a # b" # c'), ['say', 'a # b']);
});

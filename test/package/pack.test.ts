// The package as users get it: `npm pack` (scripts off: dist/ is already built), the tarball unpacked into a fresh
// folder's node_modules/medlora next to the dependencies already installed here (linked: no network), then
// `import { ... } from 'medlora'` from a plain ESM file runs a tiny end-to-end call, and the type declarations check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';

const root = packageRoot();

test(
  'npm pack -> node_modules/medlora: import { ... } from "medlora" works end to end and its types check',
  { skip: !hasShared() && 'needs ../shared', timeout: 300_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'medlora-pack-'));
    const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, '--json'], {
      cwd: root,
      encoding: 'utf8',
    });
    assert.equal(pack.status, 0, pack.stderr);
    const tgz = (JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>)[0]!;
    const files = tgz.files.map((f) => f.path);
    for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'bin/medlora.js', 'native/build.mjs'])
      assert.ok(files.includes(f), `tarball holds ${f}`);
    assert.ok(!files.some((f) => f.includes('.test.')), 'no tests in the tarball');
    const app = join(dir, 'app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    assert.equal(
      spawnSync('tar', ['xzf', join(dir, tgz.filename.split('/').pop()!), '-C', join(app, 'node_modules')]).status,
      0,
    );
    renameSync(join(app, 'node_modules', 'package'), join(app, 'node_modules', 'medlora'));
    // the dependencies (and @types/node for the type check), linked from this checkout's node_modules
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const tops = new Set(Object.keys(pkg.dependencies).map((d) => d.split('/')[0]!));
    for (const t of tops) symlinkSync(join(root, 'node_modules', t), join(app, 'node_modules', t));
    for (const t of readdirSync(join(root, 'node_modules'))) {
      // transitive dependencies hoisted by npm
      if (!tops.has(t) && t !== '.bin' && t !== 'medlora' && !t.startsWith('.'))
        symlinkSync(join(root, 'node_modules', t), join(app, 'node_modules', t));
    }
    writeFileSync(join(app, 'package.json'), '{ "type": "module", "private": true }\n');
    const tok = sharedPath('fixtures', 'hf', 'SmolLM2-135M-Instruct');
    const code = `import { initCheckpoint, load, extract, ARCHITECTURES } from 'medlora';
const out = ${JSON.stringify(join(dir, 'tiny'))};
initCheckpoint({ like: 'llama-tiny', tokenizer: ${JSON.stringify(tok)}, out, seed: 1 });
const m = load({ model: out, threads: 1 });
const [r] = extract(m, 'chemicals', ['Aspirin reduced the fever.'], { maxNewTokens: 6 });
m.dispose();
console.log(JSON.stringify({ architectures: Object.keys(ARCHITECTURES).length, id: r.id, task: r.task, finish: r.finish_reason }));
`;
    writeFileSync(join(app, 'app.mjs'), code);
    writeFileSync(join(app, 'app.ts'), code.replace('const [r] =', "const [r]: import('medlora').ExtractResult[] ="));
    // the addon is built per machine (npm install runs native/build.mjs); the test reuses this checkout's build
    const run = spawnSync(process.execPath, ['app.mjs'], {
      cwd: app,
      encoding: 'utf8',
      env: { ...process.env, MEDLORA_NATIVE_BUILD_DIR: join(root, 'native', 'build') },
    });
    assert.equal(run.status, 0, run.stderr);
    const got = JSON.parse(run.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    console.log(`  ${JSON.stringify(got)}`);
    assert.deepEqual(
      { ...got, finish: typeof got.finish },
      { architectures: 6, id: '1', task: 'chemicals', finish: 'string' },
    );
    const tsc = spawnSync(
      process.execPath,
      [
        join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
        '--noEmit',
        '--strict',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--types',
        'node',
        '--skipLibCheck',
        'app.ts',
      ],
      { cwd: app, encoding: 'utf8' },
    );
    assert.equal(tsc.status, 0, `the package's type declarations: ${tsc.stdout}${tsc.stderr}`);
    // a deep import is not part of the API
    const deep = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "await import('medlora/dist/src/cli/main.js')"],
      { cwd: app, encoding: 'utf8' },
    );
    assert.match(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/);
  },
);

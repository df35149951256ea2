// Builds the native addon (native/build/medlora.node) with g++ directly (no node-gyp: it may try to download headers).
// Finds libtorch ($LIBTORCH, then an installed python torch, then the system), compiles the C++ sources in parallel and
// incrementally, links with an rpath, and writes native/build/libtorch.json (where libtorch was found) for `doctor`.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const srcDir = join(here, 'src');
// MEDLORA_NATIVE_BUILD_DIR builds elsewhere (e.g. against a second libtorch); the facade loads from the same variable
const outDir = process.env.MEDLORA_NATIVE_BUILD_DIR ?? join(here, 'build');
const objDir = join(outDir, 'obj');
const jobs = Math.max(1, Number(process.env.MEDLORA_BUILD_JOBS ?? 2));
const verbose = process.argv.includes('--verbose');

function fail(msg) {
  console.error(`medlora native build: ${msg}`);
  process.exit(1);
}

/** TORCH_VERSION from the headers (2.x keeps it in headeronly/version.h, 1.13 in the C++ API's version.h). */
function headerVersion(includeDirs) {
  for (const inc of includeDirs) {
    for (const rel of ['torch/headeronly/version.h', 'torch/version.h']) {
      const p = join(inc, rel);
      if (!existsSync(p)) continue;
      const t = readFileSync(p, 'utf8');
      const m = (k) => t.match(new RegExp(`#define TORCH_VERSION_${k}\\s+(\\d+)`))?.[1];
      if (m('MAJOR')) return `${m('MAJOR')}.${m('MINOR')}.${m('PATCH')}`;
    }
  }
  return 'unknown';
}

function fromRoot(root, how) {
  const inc = [join(root, 'include'), join(root, 'include', 'torch', 'csrc', 'api', 'include')];
  if (!existsSync(join(inc[0], 'ATen', 'ATen.h'))) return undefined;
  // the CMake config of a libtorch download records the ABI it was built with
  let abi = process.env.MEDLORA_CXX11_ABI;
  const cmake = join(root, 'share', 'cmake', 'Torch', 'TorchConfig.cmake');
  if (abi === undefined && existsSync(cmake)) abi = readFileSync(cmake, 'utf8').match(/_GLIBCXX_USE_CXX11_ABI=(\d)/)?.[1];
  // a libtorch download keeps its libraries in lib/; a distribution prefix such as /usr in lib/<multiarch>/
  const libDir = [join(root, 'lib'), join(root, 'lib', 'x86_64-linux-gnu'), join(root, 'lib', 'aarch64-linux-gnu')]
    .find((d) => existsSync(join(d, 'libtorch_cpu.so')) || existsSync(join(d, 'libtorch.so'))) ?? join(root, 'lib');
  return { how, root, includeDirs: inc, libDir, abi: abi ?? '1', version: headerVersion(inc) };
}

function fromPython(py) {
  const code = 'import json, os, torch; print(json.dumps({"root": os.path.dirname(torch.__file__), ' +
    '"abi": int(torch._C._GLIBCXX_USE_CXX11_ABI), "version": torch.__version__, "cuda": torch.version.cuda}))';
  let out;
  try {
    out = execFileSync(py, ['-c', code], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120_000 });
  } catch {
    return undefined;
  }
  const info = JSON.parse(out.trim().split('\n').pop());
  const found = fromRoot(info.root, `python torch ${info.version} (${py})`);
  if (!found) return undefined;
  return { ...found, abi: String(info.abi), version: info.version, pythonCuda: info.cuda };
}

function fromSystem() {
  if (!existsSync('/usr/include/torch/csrc/api/include/torch/torch.h') && !existsSync('/usr/include/ATen/ATen.h')) return undefined;
  const inc = ['/usr/include', '/usr/include/torch/csrc/api/include'];
  const libDir = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib']
    .find((d) => existsSync(join(d, 'libtorch.so')) || existsSync(join(d, 'libtorch_cpu.so')));
  if (!libDir) return undefined;
  // Debian builds everything with the C++11 ABI
  return { how: 'system (Debian libtorch-dev)', root: '/usr', includeDirs: inc, libDir, abi: '1', version: headerVersion(inc) };
}

function findLibtorch() {
  if (process.env.LIBTORCH) {
    const f = fromRoot(process.env.LIBTORCH, `LIBTORCH=${process.env.LIBTORCH}`);
    if (!f) fail(`LIBTORCH=${process.env.LIBTORCH} does not look like libtorch (no include/ATen/ATen.h under it).`);
    return f;
  }
  // scripts/setup.sh makes .torch-venv when the system python refuses pip installs (Debian's PEP 668)
  const venvPython = join(here, '..', '.torch-venv', 'bin', 'python');
  return fromPython(process.env.PYTHON ?? 'python3') ?? (existsSync(venvPython) ? fromPython(venvPython) : undefined) ??
    fromSystem() ?? fail(
    'libtorch not found. Looked at $LIBTORCH, python3 -c "import torch", .torch-venv, and /usr/include/torch.\n' +
    '  Install it with: bash scripts/setup.sh   (pip install torch, or apt-get install libtorch-dev libopenblas0-pthread)\n' +
    '  or point LIBTORCH at an unpacked libtorch download, then run: node native/build.mjs');
}

function nodeIncludeDir() {
  const cands = [process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node'].filter(Boolean);
  return cands.find((d) => existsSync(join(d, 'node_api.h'))) ??
    fail(`Node's C headers (node_api.h) not found in ${cands.join(', ')}; install nodejs headers (e.g. apt-get install libnode-dev) or set npm_config_nodedir.`);
}

function napiIncludeDir() {
  try {
    const require = createRequire(join(here, '..', 'package.json'));
    return dirname(require.resolve('node-addon-api/package.json'));
  } catch {
    return fail('node-addon-api is not installed; run npm ci first.');
  }
}

function mtime(p) {
  try { return statSync(p).mtimeMs; } catch { return -1; }
}

function run(cmd, args) {
  return new Promise((resolve) => {
    if (verbose) console.error([cmd, ...args].join(' '));
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (code) => resolve({ code, err }));
    p.on('error', (e) => resolve({ code: 1, err: String(e) }));
  });
}

/**
 * torch.distributed (c10d, used by dist.cc): on when libtorch ships the c10d headers of the 2.x Backend API. The pip
 * wheels ship c10d's headers but not gloo's: ProcessGroupGloo.hpp then gets the declarations-only stand-ins in
 * src/gloo-shim (after the real include dirs, so a libtorch with gloo headers uses its own). NCCL (ProcessGroupNCCL,
 * guarded by USE_C10D_NCCL as in torch's own build) when linking torch_cuda and nccl.h + the CUDA runtime headers are
 * found (the CUDA wheels' nvidia-* packages, or $CUDA_HOME).
 */
function c10dFlags(lt, cudaLibs) {
  const c10d = (f) => lt.includeDirs.some((d) => existsSync(join(d, 'torch', 'csrc', 'distributed', 'c10d', f)));
  if (!c10d('Backend.hpp') || !c10d('ProcessGroupGloo.hpp') || !c10d('TCPStore.hpp')) return { flags: [], gloo: false, nccl: false };
  const flags = ['-DMEDLORA_WITH_C10D=1', '-DUSE_C10D_GLOO=1'];
  const realGloo = lt.includeDirs.some((d) => existsSync(join(d, 'gloo', 'context.h')));
  if (!realGloo) flags.push('-idirafter', join(srcDir, 'gloo-shim'));
  let nccl = false;
  if (cudaLibs.length && c10d('ProcessGroupNCCL.hpp')) {
    // the CUDA wheels put nccl.h and cuda_runtime_api.h in site-packages/nvidia/*/include, next to torch/
    const site = dirname(lt.root);
    const nvidia = join(site, 'nvidia');
    const cands = [process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'include'), '/usr/local/cuda/include',
      ...(existsSync(nvidia) ? readdirSync(nvidia).map((p) => join(nvidia, p, 'include')) : [])].filter(Boolean);
    const ncclInc = cands.find((d) => existsSync(join(d, 'nccl.h')));
    const cudaIncs = cands.filter((d) => existsSync(d));
    if (ncclInc && cudaIncs.some((d) => existsSync(join(d, 'cuda_runtime_api.h')))) {
      nccl = true;
      flags.push('-DUSE_C10D_NCCL=1', '-DUSE_CUDA=1', ...[...new Set([ncclInc, ...cudaIncs])].flatMap((d) => ['-isystem', d]));
    }
  }
  return { flags, gloo: true, nccl, shim: !realGloo };
}

async function main() {
  const lt = findLibtorch();
  const libs = ['torch', 'torch_cpu', 'c10'];
  const cudaLibs = ['torch_cuda', 'c10_cuda'].filter((l) => existsSync(join(lt.libDir, `lib${l}.so`)));
  const dist = c10dFlags(lt, cudaLibs);
  // libtorch 2.14+ refuses C++17 (ATen.h: "C++20 or later compatible compiler is required"); older ones build as C++17
  const aten = lt.includeDirs.map((d) => join(d, 'ATen', 'ATen.h')).find((p) => existsSync(p));
  const std = aten && /C\+\+20 or later/.test(readFileSync(aten, 'utf8')) ? 'c++20' : 'c++17';
  const cflags = [`-std=${std}`, '-O2', '-fPIC', '-fvisibility=hidden', `-D_GLIBCXX_USE_CXX11_ABI=${lt.abi}`,
    // at::parallel_for is a header template (ATen/ParallelOpenMP.h: `#pragma omp parallel`): without -fopenmp our own
    // kernels (dropout.cc) run on one thread. Linking -fopenmp adds a DT_NEEDED libgomp.so.1, which the rpath below
    // resolves to the copy libtorch itself loads (pip wheels ship theirs in torch/lib): one OpenMP runtime, one pool.
    '-fopenmp',
    // NAPI_EXPERIMENTAL enables "basic" finalizers, which run during GC itself; ordinary finalizers are deferred to
    // the event loop, so a synchronous training loop would never free the tensors it dropped without dispose()
    '-DNAPI_EXPERIMENTAL', '-DNAPI_CPP_EXCEPTIONS', '-DNODE_ADDON_API_DISABLE_DEPRECATED',
    ...(cudaLibs.length ? ['-DMEDLORA_WITH_CUDA=1'] : []),
    ...dist.flags,
    '-I', nodeIncludeDir(), '-I', napiIncludeDir(),     // /usr/include is already a system directory: naming it again breaks libstdc++'s #include_next <stdlib.h>
    ...lt.includeDirs.filter((d) => d !== '/usr/include').flatMap((d) => ['-isystem', d]),
    '-Wno-deprecated-declarations', '-Wno-unused-parameter'];
  mkdirSync(objDir, { recursive: true });
  // a change of flags (another libtorch, another ABI) rebuilds everything
  const sig = JSON.stringify(cflags);
  const sigFile = join(objDir, 'flags.json');
  const sameFlags = existsSync(sigFile) && readFileSync(sigFile, 'utf8') === sig;
  if (!sameFlags) {
    for (const f of readdirSync(objDir)) if (f.endsWith('.o')) rmSync(join(objDir, f));
    writeFileSync(sigFile, sig);
  }
  const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cc')).sort();
  const newestHeader = Math.max(...readdirSync(srcDir).filter((f) => f.endsWith('.h')).map((f) => mtime(join(srcDir, f))), 0);
  const todo = sources.filter((f) => {
    const o = join(objDir, f.replace(/\.cc$/, '.o'));
    return !sameFlags || mtime(o) < Math.max(mtime(join(srcDir, f)), newestHeader);
  });
  if (todo.length) console.error(`medlora native build: libtorch ${lt.version} from ${lt.how}; compiling ${todo.join(', ')} (${jobs} jobs) ...`);
  const queue = [...todo];
  let failed = false;
  await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      const r = await run('g++', [...cflags, '-c', join(srcDir, f), '-o', join(objDir, f.replace(/\.cc$/, '.o'))]);
      if (r.code !== 0) {
        failed = true;
        // show only the first errors: a template error cascade helps nobody
        const lines = r.err.split('\n');
        const first = lines.findIndex((l) => l.includes('error'));
        console.error(`medlora native build: compiling ${f} failed:\n${lines.slice(Math.max(0, first - 3), first + 25).join('\n')}`);
      } else if (verbose && r.err) console.error(r.err);
    }
  }));
  if (failed) fail('C++ compilation failed (see above).');
  const out = join(outDir, 'medlora.node');
  const objs = sources.map((f) => join(objDir, f.replace(/\.cc$/, '.o')));
  if (todo.length || mtime(out) < Math.max(...objs.map(mtime))) {
    const ldflags = ['-shared', '-fopenmp', '-o', out, ...objs, `-L${lt.libDir}`, `-Wl,-rpath,${lt.libDir}`,
      ...(cudaLibs.length ? ['-Wl,--no-as-needed', ...cudaLibs.map((l) => `-l${l}`), '-Wl,--as-needed'] : []),
      ...libs.map((l) => `-l${l}`)];
    const r = await run('g++', ldflags);
    if (r.code !== 0) fail(`linking failed:\n${r.err.split('\n').slice(0, 30).join('\n')}`);
  }
  writeFileSync(join(outDir, 'libtorch.json'), JSON.stringify({
    how: lt.how, root: lt.root, includeDirs: lt.includeDirs, libDir: lt.libDir, cxx11Abi: Number(lt.abi),
    version: lt.version, cudaLibs, c10d: { gloo: dist.gloo, nccl: dist.nccl, glooShim: !!dist.shim }, builtAt: new Date().toISOString(),
  }, null, 2) + '\n');
  console.error(`medlora native build: ${out} ready (libtorch ${lt.version}, ${lt.how})`);
}

await main();

// Loads the native addon (native/build/medlora.node, built by native/build.mjs) once, and applies the process-wide
// defaults: OpenMP threads sleep instead of spin-waiting (OMP_WAIT_POLICY=PASSIVE, set before libtorch's OpenMP
// runtime starts, i.e. before the addon loads; docs/PERFORMANCE.md "Threads") and the intra-op thread count (physical
// cores unless MEDLORA_NUM_THREADS is set).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';

/** Opaque handle to a native tensor (a JS external). Only the facade touches it. */
export type Handle = { readonly __medloraTensor: unique symbol };
/** Opaque handle to a native optimizer. */
export type OptimHandle = { readonly __medloraOptim: unique symbol };

/** A native export: every function validates its arguments and throws `medlora engine: <op>: ...` errors. */
export type NativeFn = (...args: unknown[]) => unknown;

/** native/build/medlora.node, or $MEDLORA_NATIVE_BUILD_DIR/medlora.node (a second build, e.g. against libtorch 1.13). */
export function addonPath(): string {
  return join(process.env.MEDLORA_NATIVE_BUILD_DIR ?? join(packageRoot(), 'native', 'build'), 'medlora.node');
}

/**
 * OpenMP settings that must be in the environment before libtorch's OpenMP runtime (libgomp, or Intel's libiomp)
 * initialises, which happens when the addon is loaded. With the runtimes' defaults an idle worker spins for a while
 * (libgomp: GOMP_SPINCOUNT 300000 iterations, ACTIVE: forever; libiomp: KMP_BLOCKTIME 200 ms) before sleeping; when
 * another process holds one of the cores, every parallel op then waits for a worker that is spinning or descheduled,
 * and a 2-thread run took 2-3x (up to 30x) as long as a 1-thread run (bench/threads.ts). PASSIVE workers sleep at once.
 * A user's own (non-empty) OMP_WAIT_POLICY / GOMP_SPINCOUNT / KMP_BLOCKTIME is kept as given.
 */
export function applyOpenMpDefaults(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const set: Record<string, string> = {};
  if (!env.OMP_WAIT_POLICY && !env.GOMP_SPINCOUNT) set.OMP_WAIT_POLICY = 'PASSIVE';
  if (!env.KMP_BLOCKTIME) set.KMP_BLOCKTIME = '0';
  // process.env assignments reach the C environment (setenv), which the OpenMP runtime reads when it is loaded
  Object.assign(env, set);
  return set;
}

function load(): Record<string, NativeFn> {
  const path = addonPath();
  applyOpenMpDefaults();
  if (!existsSync(path)) {
    throw new MedloraError(
      `the native engine is not built (${path} is missing): run \`node native/build.mjs\` ` +
        '(npm install does it; scripts/setup.sh installs libtorch first)',
    );
  }
  const require = createRequire(import.meta.url);
  try {
    return require(path) as Record<string, NativeFn>;
  } catch (e) {
    throw new MedloraError(
      `cannot load the native engine ${path}: ${(e as Error).message}. ` +
        'Rebuild it with `node native/build.mjs` (libtorch may have moved or changed).',
      { cause: e },
    );
  }
}

/** Physical cores (not hyper-threads), from /proc/cpuinfo; falls back to the logical CPU count. */
export function physicalCores(): number {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const cores = new Set<string>();
    let phys = '0';
    for (const line of text.split('\n')) {
      const [k, v] = line.split(':').map((s) => s.trim());
      if (k === 'physical id') phys = v ?? '0';
      else if (k === 'core id') cores.add(`${phys}/${v}`);
    }
    if (cores.size > 0) return cores.size;
  } catch {
    // not Linux: fall through
  }
  return availableParallelism();
}

export const N: Record<string, NativeFn> = load();

function defaultThreads(): number {
  const env = process.env.MEDLORA_NUM_THREADS;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1)
      throw new MedloraError(`MEDLORA_NUM_THREADS must be a positive integer, got "${env}"`);
    return n;
  }
  return physicalCores();
}
N.setNumThreads!(defaultThreads());

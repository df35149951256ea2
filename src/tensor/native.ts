// Loads the native addon (native/build/medlora.node, built by native/build.mjs) once, and applies the process-wide
// defaults: the intra-op thread count (physical cores unless MEDLORA_NUM_THREADS is set).
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

function load(): Record<string, NativeFn> {
  const path = addonPath();
  if (!existsSync(path)) {
    throw new MedloraError(`the native engine is not built (${path} is missing): run \`node native/build.mjs\` ` +
      '(npm install does it; scripts/setup.sh installs libtorch first)');
  }
  const require = createRequire(import.meta.url);
  try {
    return require(path) as Record<string, NativeFn>;
  } catch (e) {
    throw new MedloraError(`cannot load the native engine ${path}: ${(e as Error).message}. ` +
      'Rebuild it with `node native/build.mjs` (libtorch may have moved or changed).', { cause: e });
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
    if (!Number.isInteger(n) || n < 1) throw new MedloraError(`MEDLORA_NUM_THREADS must be a positive integer, got "${env}"`);
    return n;
  }
  return physicalCores();
}
N.setNumThreads!(defaultThreads());

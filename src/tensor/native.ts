// Loads the native addon (native/build/medlora.node, built by native/build.mjs) once, and applies the process-wide
// defaults: OpenMP threads sleep instead of spin-waiting (OMP_WAIT_POLICY=PASSIVE, set before libtorch's OpenMP
// runtime starts, i.e. before the addon loads; docs/PERFORMANCE.md "Threads"), glibc malloc keeping freed blocks for
// reuse, and the intra-op thread count (physical cores unless MEDLORA_NUM_THREADS is set).
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

/**
 * glibc malloc settings applied when the addon loads (issue 19). By default glibc serves every block above a dynamic
 * threshold (128 KiB, rising to at most 32 MiB as large blocks are freed) with a fresh mmap, and gives the top of the
 * heap back to the system once more than twice that threshold is free there; a training step allocates and frees
 * hundreds of MB of activations (the lm_head's [tokens, vocab] f32 logits, their LoRA delta and gradients are tens of
 * MB each), so every step page-faults its working set in again (sys time; on a loaded VM a fault costs many us).
 * medlora keeps blocks up to 32 MiB (glibc's largest mmap threshold) in the heap, keeps up to 1 GiB of free heap
 * instead of trimming it, and grows the heap 64 MiB at a time: the memory is reused across steps without faults.
 * Peak memory is unchanged; freed memory up to 1 GiB is kept for reuse. Off with MEDLORA_MALLOC_TUNING=0, and when
 * the user set any of glibc's own MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_ / MALLOC_MMAP_MAX_.
 * Larger blocks: reuseLargeBlocks below, for the training loop.
 */
export const MALLOC_TUNING = { mmapThreshold: 32 << 20, trimThreshold: 1 << 30, topPad: 64 << 20 } as const;

/** whether MALLOC_TUNING was applied at load (glibc, not turned off): reuseLargeBlocks acts only then */
let mallocTuned = false;

function applyMallocDefaults(n: Record<string, NativeFn>, env: NodeJS.ProcessEnv = process.env): void {
  if (env.MEDLORA_MALLOC_TUNING === '0') return;
  if (env.MALLOC_MMAP_THRESHOLD_ || env.MALLOC_TRIM_THRESHOLD_ || env.MALLOC_TOP_PAD_ || env.MALLOC_MMAP_MAX_) return;
  if (typeof n.tuneMalloc !== 'function') return;
  mallocTuned = n.tuneMalloc(MALLOC_TUNING.mmapThreshold, MALLOC_TUNING.trimThreshold, MALLOC_TUNING.topPad) === true;
}

/** glibc's default M_MMAP_MAX (DEFAULT_MMAP_MAX in malloc/malloc.c): how many blocks may be mmap'ed at once */
const GLIBC_MMAP_MAX = 65536;
let largeBlockUsers = 0;

/**
 * From now until the returned function is called, glibc serves blocks of EVERY size from the heap (M_MMAP_MAX 0), so
 * the blocks above MALLOC_TUNING's 32 MiB mmap threshold (glibc's ceiling for it) are reused too instead of being
 * mmap'ed, page-faulted and unmapped each time. What needs it: a training step at a large vocabulary, whose lm_head
 * logits, their LoRA delta and gradients are [tokens, vocab] f32 (llama-3.2-1b recipe: [117, 128256] = 60 MB each):
 * 60k-100k page faults per micro-batch without it, none with it (docs/PERFORMANCE.md). The trainer's loop uses it,
 * not the whole process: a model load's large buffers are read once and freed, and keeping them in the heap would only
 * risk fragmenting it. Cost: freed space stays resident while it lasts (the 8B QLoRA step of bench:scale: peak RSS
 * 8.01 -> 9.56 GB, step 481.7 -> 204.2 s). Nested calls are counted; a no-op where the tuning is off
 * (MEDLORA_MALLOC_TUNING=0, a user's MALLOC_*_ variable, a C library that is not glibc).
 */
export function reuseLargeBlocks(): () => void {
  if (!mallocTuned || typeof N.mallocMmapMax !== 'function') return () => {};
  if (largeBlockUsers++ === 0) N.mallocMmapMax(0);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    if (--largeBlockUsers === 0) N.mallocMmapMax(GLIBC_MMAP_MAX);
  };
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
  let n: Record<string, NativeFn>;
  try {
    n = require(path) as Record<string, NativeFn>;
  } catch (e) {
    throw new MedloraError(
      `cannot load the native engine ${path}: ${(e as Error).message}. ` +
        'Rebuild it with `node native/build.mjs` (libtorch may have moved or changed).',
      { cause: e },
    );
  }
  applyMallocDefaults(n);
  return n;
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

// `medlora doctor`: where libtorch came from, its version and build features, CUDA devices, threads, and a short
// fp32 / bf16 matmul self-test (correctness and GFLOP/s) sized to a time budget by a short probe, compared with this
// machine only: python torch running the same matmul when it is installed, else the CPU's theoretical peak (an
// estimate). The first thing a new user runs; it answers in seconds on any machine.
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import type { CommandSpec } from '../command.js';
import { bool, num } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { cpuFacts, peakGflops, type CpuFacts } from '../../tensor/cpu.js';
import { THREADS_OPTION } from '../threads.js';

/** The command's own work stays under this (issue 11: "under 30 s on any machine", node's start and the engine's load
 * included); the speed tests and python torch share it, python being cut off when it is slow to start. */
const WALL_BUDGET_S = 20;

export const doctor: CommandSpec = {
  name: 'doctor',
  summary: 'check the compute engine: libtorch, devices, threads, matmul speed (seconds, on any machine)',
  details: [
    'The matmul sizes are picked by a short probe so that each timed test takes about --seconds; the figures are compared',
    'with python torch doing the same matmul on this machine when `python3 -c "import torch"` works (MEDLORA_PYTHON',
    "names another interpreter), else with the CPU's theoretical peak (cores x clock x FLOPs per cycle: an estimate).",
  ].join('\n'),
  options: {
    json: { type: 'boolean', description: 'print one JSON object instead of text' },
    seconds: { type: 'number', description: 'seconds per matmul speed test', default: 1, value: 'S' },
    size: {
      type: 'number',
      description: 'matrix size of the speed tests (default: picked by a short probe to fit --seconds)',
      value: 'N',
    },
    python: {
      type: 'boolean',
      default: true,
      description: 'compare with python torch when installed (--no-python: with the CPU peak estimate)',
    },
    threads: THREADS_OPTION,
  },
  async run(args) {
    const t0 = performance.now();
    const seconds = num(args, 'seconds') ?? 1;
    const size = num(args, 'size');
    if (!(seconds > 0) || (size !== undefined && (!Number.isInteger(size) || size < 1))) {
      throw new MedloraError('--seconds must be > 0 and --size a positive integer');
    }
    // loaded here so that a missing addon is reported as one clear line by this command
    const T = await import('../../tensor/index.js');
    const info = T.engineInfo();
    // correctness first: [[1,2],[3,4]]^2 = [[7,10],[15,22]] (by hand)
    const sq = T.scope(() => {
      const m = T.tensor([
        [1, 2],
        [3, 4],
      ]);
      return Array.from(m.matmul(m).toFloat32Array());
    });
    const correct = sq.join(',') === '7,10,15,22';
    const cuda = T.cudaDeviceCount();
    const threads = T.getNumThreads();
    const python = args.options.python === false ? undefined : startPythonTorch(threads);
    // each test gets --seconds, but never more than its share of the wall budget
    const per = Math.min(seconds, (WALL_BUDGET_S - 8) / 4);
    const n32 = size ?? pickSize((n) => T.matmulRate(n, 'f32', 0).gflops, per);
    const n16 = size ?? pickSize((n) => T.matmulRate(n, 'bf16', 0).gflops, per);
    // python's import must not run beside medlora's timed tests: wait for it while the budget allows both timings
    const deadline = Date.now() - (performance.now() - t0) + WALL_BUDGET_S * 1e3;
    const pyReady = python ? await python.ready(deadline - 5 * per * 1e3) : false;
    const f32 = T.matmulRate(n32, 'f32', per);
    const bf16 = T.matmulRate(n16, 'bf16', per);
    const cpu = cpuFacts();
    const torch: TorchResult =
      python === undefined
        ? { skipped: '--no-python' }
        : !pyReady
          ? await python.measure([], 0, 0) // the reason it is not ready
          : await python.measure(
              [
                [n32, 'f32'],
                [n16, 'bf16'],
              ],
              per,
              deadline,
            );
    const peak = peakGflops(cpu, Math.min(threads, T.physicalCores()));
    const reference =
      'rates' in torch
        ? {
            kind: 'python-torch' as const,
            version: torch.version,
            f32Gflops: round(torch.rates[0]!),
            bf16Gflops: round(torch.rates[1]!),
          }
        : {
            kind: 'cpu-peak-estimate' as const,
            f32Gflops: peak.f32 === null ? null : round(peak.f32),
            bf16Gflops: peak.bf16 === null ? null : round(peak.bf16),
            basis: peak.basis,
            why: 'skipped' in torch ? torch.skipped : undefined,
          };
    const report = {
      libtorch: {
        version: info.fullVersion ?? info.torchVersion,
        foundBy: info.foundBy ?? 'unknown',
        libDir: info.libDir ?? null,
        cxx11Abi: info.cxx11Abi,
        compiledWithCuda: info.compiledWithCuda,
        mkl: info.hasMKL,
        onednn: info.hasMKLDNN,
        openmp: info.hasOpenMP,
      },
      addon: info.addon,
      cuda: { available: T.cudaIsAvailable(), devices: cuda },
      // what training.device / --device auto picks in this process (src/tensor/device.ts)
      autoDevice: T.resolveDevice('auto', { what: 'device' }).device,
      threads,
      physicalCores: T.physicalCores(),
      openmp: { OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? null },
      selfTest: {
        matmulCorrect: correct,
        size: n32,
        bf16Size: n16,
        f32Gflops: round(f32.gflops),
        bf16Gflops: round(bf16.gflops),
      },
      reference,
      cpu: { model: cpu.model, ghz: cpu.ghz, bf16Units: cpu.bf16Units },
      seconds: round((performance.now() - t0) / 1e3),
    };
    if (bool(args, 'json')) {
      console.log(JSON.stringify(report));
    } else {
      const yn = (b: boolean): string => (b ? 'yes' : 'no');
      const vs = (g: number, r: number | null): string => {
        if (r === null || !(r > 0)) return '';
        return reference.kind === 'python-torch'
          ? ` (python torch ${reference.version}, same size and threads here: ${fmt(r)}; medlora ${Math.round((100 * g) / r)}%)`
          : ` (${Math.round((100 * g) / r)}% of this CPU's estimated peak ${fmt(r)})`;
      };
      const load = loadavg()[0]!;
      if (load > report.physicalCores) {
        console.log(
          `note: the machine is busy (1-min load ${load.toFixed(1)} on ${report.physicalCores} cores); the matmul figures will be low`,
        );
      }
      console.log(
        [
          `libtorch   ${report.libtorch.version}, found via ${report.libtorch.foundBy}`,
          `           ${report.libtorch.libDir ?? ''}`,
          `build      C++11 ABI ${info.cxx11Abi}, CUDA compiled ${yn(info.compiledWithCuda)}, MKL ${yn(info.hasMKL)}, oneDNN ${yn(info.hasMKLDNN)}, OpenMP ${yn(info.hasOpenMP)}`,
          `CUDA       ${cuda > 0 ? `${cuda} device(s)` : 'no devices'}; training.device / --device auto -> ${report.autoDevice}`,
          `cpu        ${cpu.model ?? 'unknown'}${cpu.ghz ? ` @ ${cpu.ghz.toFixed(2)} GHz` : ''}; bf16 matmul units: ${cpu.bf16Units.length ? cpu.bf16Units.join(', ') : 'none (bf16 is emulated: f32 is faster here; training computes in f32)'}`,
          `threads    ${threads} (physical cores: ${report.physicalCores}; --threads N or MEDLORA_NUM_THREADS to change; OMP_WAIT_POLICY ${process.env.OMP_WAIT_POLICY ?? 'unset'})`,
          `matmul     ${correct ? 'correct' : 'WRONG RESULT'} (2x2 check)`,
          `fp32       ${n32}x${n32}: ${fmt(f32.gflops)}${vs(f32.gflops, reference.f32Gflops)}`,
          `bf16       ${n16}x${n16}: ${fmt(bf16.gflops)}${vs(bf16.gflops, reference.bf16Gflops)}`,
          reference.kind === 'cpu-peak-estimate'
            ? `reference  estimated peak = ${reference.basis}${reference.why ? `; python torch not used: ${reference.why}` : ''}`
            : `reference  python torch ${reference.version} on this machine, same sizes, threads and timing (best call)`,
          `took       ${report.seconds.toFixed(1)} s`,
        ].join('\n'),
      );
    }
    return correct ? 0 : 1;
  },
};

/**
 * The largest size (a multiple of 64, 64..2048) whose one matmul takes about seconds/6, from a probe at 128 and 256
 * (the rate grows with n, so the estimate errs small). `rate(n)` times one call after a warm-up.
 */
export function pickSize(rate: (n: number) => number, seconds: number): number {
  let g = rate(128);
  const t256 = (2 * 256 ** 3) / (g * 1e9);
  if (t256 < seconds / 6) g = Math.max(g, rate(256));
  const n = Math.cbrt(((seconds / 6) * g * 1e9) / 2);
  return Math.max(64, Math.min(2048, Math.floor(n / 64) * 64));
}

type TorchResult = { version: string; rates: number[] } | { skipped: string };

/**
 * python torch, started at once so that its (mostly I/O) `import torch` overlaps medlora's own tests; it then waits for
 * the sizes on stdin and times the same matmuls (best call over `seconds` each) only after medlora's are done.
 */
interface PythonTorch {
  /** resolves when `import torch` is done (true), or false when it failed or did not finish by `deadline` (ms epoch) */
  ready(deadline: number): Promise<boolean>;
  measure(tests: Array<[number, 'f32' | 'bf16']>, seconds: number, deadline: number): Promise<TorchResult>;
}

function startPythonTorch(threads: number): PythonTorch {
  const py = process.env.MEDLORA_PYTHON || 'python3';
  const code = [
    'import json, sys, time',
    'import torch',
    `torch.set_num_threads(${threads})`,
    'print("ready", flush=True)',
    'req = json.loads(sys.stdin.readline())',
    'out = []',
    'for n, d in req["tests"]:',
    '    dt = torch.float32 if d == "f32" else torch.bfloat16',
    '    a = torch.randn(n, n).to(dt); b = torch.randn(n, n).to(dt); a @ b',
    '    best, total, calls = float("inf"), 0.0, 0',
    '    while total < req["seconds"] or calls < 2:',
    '        t = time.perf_counter(); a @ b; e = time.perf_counter() - t',
    '        best = min(best, e); total += e; calls += 1',
    '    out.append(2 * n ** 3 / best / 1e9)',
    'print(json.dumps({"version": torch.__version__, "rates": out}), flush=True)',
  ].join('\n');
  let stdout = '',
    stderr = '',
    failed: string | undefined,
    exited = false;
  const child = spawn(py, ['-c', code], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.on('error', (e: NodeJS.ErrnoException) => {
    failed = e.code === 'ENOENT' ? `${py} not found` : `${py}: ${e.message}`;
  });
  child.on('exit', () => {
    exited = true;
  });
  child.stdin.on('error', () => {
    /* python gone: reported below */
  });
  const why = (): string =>
    failed ??
    (/No module named .?torch/.test(stderr)
      ? `${py} has no torch`
      : `${py} failed (${stderr.trim().split('\n').pop() ?? 'no output'})`);
  const wait = async (done: () => boolean, deadline: number): Promise<boolean> => {
    while (!done()) {
      if (failed || exited || Date.now() > deadline) return done();
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  };
  const isReady = (): boolean => stdout.startsWith('ready\n');
  return {
    ready: (deadline) => wait(isReady, deadline),
    async measure(tests, seconds, deadline) {
      try {
        if (!isReady()) {
          return { skipped: failed || exited ? why() : `${py} with torch was not ready in time (busy machine?)` };
        }
        child.stdin.write(`${JSON.stringify({ tests, seconds })}\n`);
        if (!(await wait(() => stdout.split('\n').length > 2, deadline))) {
          return { skipped: failed || exited ? why() : `${py} with torch did not finish in time (busy machine?)` };
        }
        return JSON.parse(stdout.split('\n')[1]!) as { version: string; rates: number[] };
      } catch {
        return { skipped: `${py}: unreadable output` };
      } finally {
        if (!exited) child.kill();
      }
    },
  };
}

/** The CPU model and its bf16 matrix instructions (kept for callers of the earlier doctor API). */
export function cpuInfo(path = '/proc/cpuinfo'): { model: string | null; bf16Units: string[] } {
  const c: CpuFacts = cpuFacts(path, '/nonexistent');
  return { model: c.model, bf16Units: c.bf16Units };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

function fmt(gflops: number): string {
  return gflops >= 1000 ? `${(gflops / 1000).toFixed(2)} TFLOP/s` : `${gflops.toFixed(0)} GFLOP/s`;
}

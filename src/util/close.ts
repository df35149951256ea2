// Numeric comparison for tests and checks: max absolute / relative difference between two arrays, with a
// readable failure message that always reports the max difference and where it occurred.

export interface CloseOptions {
  /** absolute tolerance */
  atol?: number;
  /** tolerance relative to the max |expected| of the whole array (the reference README's "relative to max-abs") */
  rtolMaxAbs?: number;
  /** what is being compared, for the message */
  label?: string;
}

export interface CloseReport {
  ok: boolean;
  maxAbsDiff: number;
  maxAbsExpected: number;
  worstIndex: number;
  tolerance: number;
  message: string;
}

type Num = ArrayLike<number>;

export function compareClose(actual: Num, expected: Num, opts: CloseOptions): CloseReport {
  const label = opts.label ?? 'values';
  if (actual.length !== expected.length) {
    return {
      ok: false,
      maxAbsDiff: Infinity,
      maxAbsExpected: NaN,
      worstIndex: -1,
      tolerance: NaN,
      message: `${label}: length ${actual.length} != expected ${expected.length}`,
    };
  }
  let maxAbsDiff = 0,
    worst = -1,
    maxAbsExpected = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!,
      a = actual[i]!;
    maxAbsExpected = Math.max(maxAbsExpected, Math.abs(e));
    const d = Math.abs(a - e);
    // NaN never passes: a NaN difference counts as infinitely wrong
    if (Number.isNaN(d) || d > maxAbsDiff) {
      maxAbsDiff = Number.isNaN(d) ? Infinity : d;
      worst = i;
    }
  }
  const tolerance = (opts.atol ?? 0) + (opts.rtolMaxAbs ?? 0) * maxAbsExpected;
  const ok = maxAbsDiff <= tolerance;
  const where = worst >= 0 ? ` at [${worst}] (actual ${actual[worst]}, expected ${expected[worst]})` : '';
  const message =
    `${label}: max |diff| = ${maxAbsDiff.toExponential(3)}${where}; tolerance ${tolerance.toExponential(3)}` +
    ` (atol ${opts.atol ?? 0}, rtol*maxabs ${opts.rtolMaxAbs ?? 0}*${maxAbsExpected.toExponential(3)}) -> ${ok ? 'ok' : 'FAIL'}`;
  return { ok, maxAbsDiff, maxAbsExpected, worstIndex: worst, tolerance, message };
}

/** Assert closeness; prints the max difference either way (tests must show it), throws on failure. */
export function assertClose(actual: Num, expected: Num, opts: CloseOptions): CloseReport {
  const r = compareClose(actual, expected, opts);
  console.log(`  ${r.message}`);
  if (!r.ok) throw new Error(r.message);
  return r;
}

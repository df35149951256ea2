// Child process of nf4-load.test.ts: loads a checkpoint with NF4 linears either while loading (loadModelNf4) or after
// (loadModel + quantizeModel), and prints the peak resident-set growth (VmHWM after minus VmRSS before, with the
// peak reset through /proc/self/clear_refs) and the NF4 / kept-full-precision bytes, as one JSON line.
import { readFileSync, writeFileSync } from 'node:fs';
import { ones } from '../../src/tensor/index.js';
import { loadModel } from '../../src/model/load.js';
import { loadModelNf4, Nf4Linear, quantizeModel } from '../../src/adapt/nf4-linear.js';

const kb = (field: string): number => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
};

const [dir, mode] = process.argv.slice(2) as [string, string];
ones([4]).dispose(); // start the engine before the baseline
let base = kb('VmRSS');
try {
  writeFileSync('/proc/self/clear_refs', '5'); // reset VmHWM to the current RSS
} catch {
  base = kb('VmHWM'); // no reset possible: measure from the peak so far (conservative)
}
const opts = { skip: ['lm_head'] };
const model =
  mode === 'while-loading'
    ? loadModelNf4(dir, { dtype: 'bf16' }, opts).model
    : (() => {
        const m = loadModel(dir, { dtype: 'bf16' });
        quantizeModel(m, opts);
        return m;
      })();
const growth = kb('VmHWM') - base;
let nf4Bytes = 0,
  keptBytes = 0;
for (const [, m] of model.namedModules()) {
  if (m instanceof Nf4Linear) nf4Bytes += m.weightBytes;
  else for (const [, t] of m.ownParameters()) keptBytes += t.numel * (t.dtype === 'f32' ? 4 : 2);
}
console.log(JSON.stringify({ growth, nf4Bytes, keptBytes }));
model.dispose();

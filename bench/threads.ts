// `node dist/bench/threads.js`: wall time of the same `medlora loss` run at 1 and 2 (all) threads under different
// OpenMP wait policies, with and without a sibling process keeping one core busy (the "shared machine" case). The
// measurements behind the default thread settings in src/tensor/native.ts (docs/PERFORMANCE.md, "Threads").
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initModel, saveModel } from '../src/model/init.js';
import { packageRoot } from '../src/util/paths.js';
import { physicalCores } from '../src/tensor/index.js';

const arg = (k: string, d: string): string => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1]! : d;
};
const hidden = Number(arg('hidden', '256'));
const layers = Number(arg('layers', '4'));
const rows = Number(arg('rows', '16'));
const repeats = Number(arg('repeats', '1'));
const dir = mkdtempSync(join(tmpdir(), 'medlora-threads-'));
const cfg = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 512,
  hidden_size: hidden,
  intermediate_size: Math.round(hidden * 2.75),
  num_hidden_layers: layers,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 256,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  torch_dtype: 'float32',
  bos_token_id: 1,
  eos_token_id: 2,
};
const m = initModel(cfg, { seed: 1 });
saveModel(m, cfg, join(dir, 'model'));
m.dispose();
const lines: string[] = [];
for (let r = 0; r < rows; r++) {
  const ids = Array.from({ length: 64 }, (_, i) => (r * 31 + i * 7) % 512);
  lines.push(JSON.stringify({ input_ids: ids, labels: ids }));
}
writeFileSync(join(dir, 'rows.jsonl'), lines.join('\n') + '\n');

const bin = join(packageRoot(), 'bin', 'medlora.js');
function timeLoss(env: Record<string, string>): number {
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [bin, 'loss', '--model', join(dir, 'model'), '--data', join(dir, 'rows.jsonl'), '--batch-size', '4', '--json'],
    { env: { ...process.env, ...env }, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`loss failed: ${r.stderr}`);
  return (performance.now() - t0) / 1e3;
}

const variants: Array<[string, Record<string, string>]> = JSON.parse(arg('variants', 'null')) ?? [
  ['1 thread', { MEDLORA_NUM_THREADS: '1' }],
  [
    `${physicalCores()} threads, OMP_WAIT_POLICY unset (libgomp spins 300000)`,
    { MEDLORA_NUM_THREADS: String(physicalCores()), GOMP_SPINCOUNT: '300000' },
  ],
  [
    `${physicalCores()} threads, OMP_WAIT_POLICY=PASSIVE`,
    { MEDLORA_NUM_THREADS: String(physicalCores()), OMP_WAIT_POLICY: 'PASSIVE' },
  ],
  [
    `${physicalCores()} threads, OMP_WAIT_POLICY=ACTIVE`,
    { MEDLORA_NUM_THREADS: String(physicalCores()), OMP_WAIT_POLICY: 'ACTIVE' },
  ],
  ['default (no settings)', {}],
];
for (const busy of [false, true]) {
  const hog = busy ? spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }) : undefined;
  try {
    for (const [name, env] of variants) {
      const times = Array.from({ length: repeats }, () => timeLoss(env));
      console.log(
        `${busy ? 'one core busy' : 'no busy sibling'} | ${name} | ${times.map((t) => t.toFixed(2)).join(' ')} s`,
      );
    }
  } finally {
    hog?.kill();
  }
}

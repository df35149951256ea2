// Quantize-while-loading (loadModelNf4, QLoRA's load_in_4bit): on every reference model the NF4 codes and scales, the
// quantize report and the logits are bit-equal to loadModel followed by quantizeModel; and on a mid-size random
// checkpoint the peak resident memory grows by about the NF4 size plus one tensor, not by the full-precision size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../../src/model/load.js';
import { buildModel } from '../../src/model/registry.js';
import { declaredParameters } from '../../src/model/layers.js';
import { parseModelConfig } from '../../src/io/config.js';
import { writeSharded, type TensorData } from '../../src/io/safetensors.js';
import { tensorData } from '../../src/io/tensor-bytes.js';
import { manualSeed, noGrad, ones, randn, scope, type Tensor } from '../../src/tensor/index.js';
import { resolve } from '../../src/adapt/apply.js';
import { loadModelNf4, Nf4Linear, quantizeModel } from '../../src/adapt/nf4-linear.js';
import { REFERENCE_FOLDERS, refBatch, refDir, skipNoShared } from '../model/fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Number of positions where two byte strings differ. */
function byteDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.byteLength, b.byteLength);
  let n = 0;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) n++;
  return n;
}

const bytesOf = (t: Tensor | undefined): Uint8Array => (t ? t.contiguous().toBytes() : new Uint8Array());

for (const name of REFERENCE_FOLDERS) {
  for (const variant of [
    { dtype: undefined, doubleQuant: false },
    { dtype: 'bf16' as const, doubleQuant: false },
    { dtype: undefined, doubleQuant: true },
  ]) {
    test(
      `quantize while loading = load then quantize, bit for bit (codes, absmax, report, logits): reference ${name}, dtype ${variant.dtype ?? 'checkpoint'}${variant.doubleQuant ? ', double quant' : ''}`,
      { skip: skipNoShared },
      () => {
        const load = variant.dtype ? { dtype: variant.dtype } : {};
        const qo = { skip: ['lm_head'], doubleQuant: variant.doubleQuant };
        const old = loadModel(refDir(name), load);
        const oldReport = quantizeModel(old, qo);
        const { model: now, report } = loadModelNf4(refDir(name), load, qo);
        try {
          assert.deepEqual(report, oldReport);
          assert.ok(report.layers.length >= 7, `${report.layers.length} layers quantized`);
          let diff = 0,
            bytes = 0;
          for (const path of report.layers) {
            const a = resolve(old, path) as Nf4Linear,
              b = resolve(now, path) as Nf4Linear;
            assert.ok(b instanceof Nf4Linear, path);
            assert.deepEqual(
              [b.outFeatures, b.inFeatures, b.computeDType],
              [a.outFeatures, a.inFeatures, a.computeDType],
            );
            for (const [x, y] of [
              [a.q.codes, b.q.codes],
              [a.q.absmax, b.q.absmax],
              [a.q.dq?.qabsmax, b.q.dq?.qabsmax],
              [a.q.dq?.scale2, b.q.dq?.scale2],
              [a.bias, b.bias],
            ] as Array<[Tensor | undefined, Tensor | undefined]>) {
              diff += byteDiff(bytesOf(x), bytesOf(y));
              bytes += bytesOf(x).byteLength;
            }
            assert.equal(a.q.dq?.offset, b.q.dq?.offset);
          }
          // every other parameter (embeddings, norms, lm_head) is the same too
          const pa = new Map(old.namedParameters());
          for (const [k, t] of now.namedParameters()) {
            diff += byteDiff(bytesOf(pa.get(k)), bytesOf(t));
            bytes += t.numel;
          }
          const { ids } = refBatch(name);
          const [la, lb] = noGrad(() =>
            scope(() => [old.forward(ids).to('f32').toFloat32Array(), now.forward(ids).to('f32').toFloat32Array()]),
          );
          let maxDiff = 0;
          for (let i = 0; i < la!.length; i++) maxDiff = Math.max(maxDiff, Math.abs(la![i]! - lb![i]!));
          console.log(
            `  ${name} ${variant.dtype ?? 'checkpoint dtype'}${variant.doubleQuant ? ' dq' : ''}: ${report.layers.length} NF4 layers, ${bytes} bytes compared, ${diff} differ; logits max |diff| ${maxDiff}`,
          );
          assert.equal(diff, 0, 'NF4 codes / scales / other parameters bit-equal');
          assert.equal(maxDiff, 0, 'logits bit-equal');
          assert.equal(byteDiff(new Uint8Array(la!.buffer), new Uint8Array(lb!.buffer)), 0);
        } finally {
          old.dispose();
          now.dispose();
        }
      },
    );
  }
}

test(
  'quantize while loading: the checker sees a one-code difference (NF4 codes of a different weight)',
  { skip: skipNoShared },
  () => {
    // the same comparison as above, on two layers whose weights differ: it must report differences
    const { model } = loadModelNf4(refDir('llama-tiny'));
    try {
      const a = resolve(model, 'model.layers.0.self_attn.q_proj') as Nf4Linear;
      const b = resolve(model, 'model.layers.1.self_attn.q_proj') as Nf4Linear;
      const d = byteDiff(bytesOf(a.q.codes), bytesOf(b.q.codes));
      console.log(`  layer 0 vs layer 1 q_proj codes: ${d} of ${a.q.codes.numel} bytes differ`);
      assert.ok(d > 0);
    } finally {
      model.dispose();
    }
  },
);

/**
 * A mid-size random Llama checkpoint (bf16, 2 shards): 12 layers of width 1024 and MLP 2816, a small vocabulary so
 * that the linears dominate (~134M linear weights, ~268 MB bf16).
 */
function writeMidCheckpoint(dir: string): { bf16Bytes: number; largest: number } {
  const raw = {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    hidden_size: 1024,
    intermediate_size: 2816,
    num_hidden_layers: 12,
    num_attention_heads: 16,
    num_key_value_heads: 4,
    vocab_size: 512,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  const model = buildModel(parseModelConfig(raw, 'config.json').config);
  const tensors: Record<string, TensorData> = {};
  let bf16Bytes = 0,
    largest = 0;
  manualSeed(0);
  for (const [key, { shape }] of declaredParameters(model)) {
    tensors[key] = noGrad(() =>
      scope(() => tensorData(/norm/.test(key) ? ones(shape).to('bf16') : randn(shape).mul(0.02).to('bf16'))),
    );
    const n = shape.reduce((a, b) => a * b, 1) * 2;
    bf16Bytes += n;
    largest = Math.max(largest, n);
  }
  model.dispose();
  writeSharded(dir, tensors, bf16Bytes / 2 + 1);
  return { bf16Bytes, largest };
}

test('quantize while loading: peak RSS grows by ~ NF4 size + one tensor, not by the bf16 size (load then quantize does)', () => {
  const dir = join(tmpdir(), `medlora-nf4-load-${process.pid}`);
  try {
    const { bf16Bytes, largest } = writeMidCheckpoint(dir);
    const child = join(here, 'nf4-load-rss.js');
    // glibc raises its mmap threshold (up to 32 MB) after freeing a large block, and then keeps freed mid-size blocks
    // (this model's 6 MB weights) in the heap: fixing the threshold at 1 MB makes the peak RSS count live memory.
    // (An 8B model's weights are 29-1050 MB, above any threshold, so they always go back to the system when freed.)
    const run = (mode: string, fixedThreshold = true): Record<string, number> => {
      const r = spawnSync(process.execPath, [child, dir, mode], {
        encoding: 'utf8',
        env: { ...process.env, OMP_NUM_THREADS: '1', ...(fixedThreshold ? { MALLOC_MMAP_THRESHOLD_: '1048576' } : {}) },
      });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
    };
    const now = run('while-loading');
    const old = run('then');
    const nowDefault = run('while-loading', false);
    const mb = (n: number): string => `${(n / 1e6).toFixed(0)} MB`;
    // kept in full precision: embeddings, norms, lm_head (bf16); in flight: one bf16 weight and the quantizer's
    // per-chunk temporaries (16384 blocks of 64: ~36 bytes per element, src/adapt/nf4.ts), plus 64 MB of slack
    const kept = now.keptBytes!;
    const bound = now.nf4Bytes! + kept + largest + 16384 * 64 * 36 + 64e6;
    console.log(
      `  mid-size checkpoint: ${mb(bf16Bytes)} bf16 (${mb(largest)} largest tensor) -> NF4 ${mb(now.nf4Bytes!)} + kept ${mb(kept)}; ` +
        `peak RSS growth: quantize while loading ${mb(now.growth!)}, load then quantize ${mb(old.growth!)}; bound ${mb(bound)}; ` +
        `quantize while loading with glibc's default mmap threshold ${mb(nowDefault.growth!)}`,
    );
    assert.equal(now.nf4Bytes, old.nf4Bytes);
    assert.ok(now.growth! <= bound, `quantize-while-loading growth ${mb(now.growth!)} > bound ${mb(bound)}`);
    // the checker fails the old path: it holds the whole bf16 base before any linear becomes NF4
    assert.ok(old.growth! > bound, `load-then-quantize growth ${mb(old.growth!)} should exceed ${mb(bound)}`);
    assert.ok(old.growth! >= bf16Bytes, `load-then-quantize holds the bf16 base (${mb(old.growth!)})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// neftune_noise_alpha: the noise medlora adds to llama-tiny's input embeddings while training equals transformers'
// neftune_post_forward_hook for the same seed (test/fixtures/run-keys/neftune.json), and nothing is added in eval mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';
import { loadModel } from '../../src/model/load.js';
import { manualSeed, noGrad, tensor } from '../../src/tensor/index.js';
import { activateNeftune, inputEmbedding, neftuneMagnitude } from '../../src/train/neftune.js';

const fx = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'run-keys', 'neftune.json'), 'utf8')) as {
  alpha: number;
  seed: number;
  input_ids: number[][];
  shape: number[];
  noise: number[];
};

test(
  "NEFTune noise equals transformers' hook (same seed), bounded by alpha/sqrt(T*d); none in eval mode",
  { skip: !hasShared() && 'needs ../shared' },
  () => {
    const m = loadModel(sharedPath('fixtures', 'reference', 'llama-tiny'));
    const [path, emb] = inputEmbedding(m)!;
    assert.equal(path, 'model.embed_tokens');
    const ids = tensor(fx.input_ids, { dtype: 'i64' });
    const plain = noGrad(() => Array.from(emb.forward(ids).toFloat32Array()));
    const off = activateNeftune(m, fx.alpha);
    m.train(true);
    manualSeed(fx.seed);
    const noisy = noGrad(() => Array.from(emb.forward(ids).toFloat32Array()));
    const noise = noisy.map((v, i) => v - plain[i]!);
    const [, T, d] = fx.shape as [number, number, number];
    const bound = neftuneMagnitude(fx.alpha, T, d);
    assert.equal(bound, 5 / Math.sqrt(24 * 64));
    const maxAbs = Math.max(...noise.map(Math.abs));
    let maxDiff = 0;
    for (let i = 0; i < noise.length; i++) maxDiff = Math.max(maxDiff, Math.abs(noise[i]! - fx.noise[i]!));
    console.log(
      `  bound ${bound.toFixed(6)}, max |noise| ${maxAbs.toFixed(6)}, max |medlora - transformers| ${maxDiff.toExponential(2)} over ${noise.length} values`,
    );
    assert.ok(maxAbs <= bound * (1 + 1e-6) && maxAbs > 0.95 * bound, 'noise fills [-bound, bound]');
    assert.ok(maxDiff < 2e-6, `noise differs from transformers by ${maxDiff}`);
    m.train(false);
    const evalOut = noGrad(() => Array.from(emb.forward(ids).toFloat32Array()));
    assert.deepEqual(evalOut, plain, 'no noise in eval mode');
    off();
    m.train(true);
    assert.deepEqual(
      noGrad(() => Array.from(emb.forward(ids).toFloat32Array())),
      plain,
      'hook removed',
    );
    m.dispose();
  },
);

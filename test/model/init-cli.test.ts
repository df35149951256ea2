// `medlora init`: named shapes equal the real checkpoints' config.json (../shared/fixtures/hf, an independent source);
// the written folder loads, takes vocab and special ids from the tokenizer, is seeded, and follows HF's init statistics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARCHITECTURES } from '../../src/model/presets.js';
import { loadModel } from '../../src/model/load.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';
import { hasShared, packageRoot, sharedPath } from '../../src/util/paths.js';

const skip = !hasShared() && 'needs ../shared';
const cli = (...a: string[]) =>
  spawnSync(process.execPath, [join(packageRoot(), 'bin', 'medlora.js'), ...a], { encoding: 'utf8' });

test('every named architecture has the shape of the real checkpoint config it names', { skip }, () => {
  const sources: Record<string, string> = {
    'smollm2-135m': 'hf/SmolLM2-135M-Instruct',
    'llama-3.2-1b': 'hf/Llama-3.2-1B',
    'qwen2.5-0.5b': 'hf/Qwen2.5-0.5B-Instruct',
    'mistral-7b': 'hf/Mistral-7B-v0.1',
    gpt2: 'hf/gpt2',
    'llama-tiny': 'reference/llama-tiny',
  };
  assert.deepEqual(Object.keys(sources).sort(), Object.keys(ARCHITECTURES).sort());
  for (const [name, src] of Object.entries(sources)) {
    const real = JSON.parse(readFileSync(sharedPath('fixtures', ...src.split('/'), 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    let compared = 0;
    for (const [k, v] of Object.entries(ARCHITECTURES[name]!.config)) {
      if (name === 'llama-tiny' && k === 'max_position_embeddings') continue; // raised to 2048 so the presets' data.max_length fits
      if (k in real) {
        assert.deepEqual(v, real[k], `${name}.${k}`);
        compared++;
      }
    }
    console.log(`  ${name}: ${compared} keys equal ${src}/config.json`);
    assert.ok(compared >= 8, name);
  }
});

test(
  "medlora init writes a loadable, seeded random checkpoint with the tokenizer's vocabulary and files",
  { skip },
  () => {
    const tokDir = sharedPath('fixtures', 'hf', 'SmolLM2-135M-Instruct');
    const dir = mkdtempSync(join(tmpdir(), 'medlora-init-'));
    for (const [out, seed] of [
      ['a', '1'],
      ['b', '1'],
      ['c', '2'],
    ] as const) {
      const r = cli(
        'init',
        '--like',
        'llama-tiny',
        '--tokenizer',
        tokDir,
        '--out',
        join(dir, out),
        '--seed',
        seed,
        '--json',
      );
      assert.equal(r.status, 0, r.stderr);
    }
    const tok = loadTokenizer(tokDir);
    const cfg = JSON.parse(readFileSync(join(dir, 'a', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([cfg.vocab_size, cfg.bos_token_id, cfg.eos_token_id], [tok.vocabSize, tok.bosId, tok.eosId]);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt'])
      assert.ok(existsSync(join(dir, 'a', f)), f);
    const w = (d: string) => readFileSync(join(dir, d, 'model.safetensors'));
    assert.ok(w('a').equals(w('b')), 'same seed, same bytes');
    assert.ok(!w('a').equals(w('c')), 'another seed, other weights');
    const m = loadModel(join(dir, 'a'));
    try {
      const p = new Map(m.namedParameters());
      const q = p.get('model.layers.0.self_attn.q_proj.weight')!.toFloat32Array();
      const mean = q.reduce((a, b) => a + b, 0) / q.length;
      const std = Math.sqrt(q.reduce((a, b) => a + (b - mean) ** 2, 0) / q.length);
      console.log(`  q_proj std ${std.toFixed(5)} (initializer_range 0.02, ${q.length} values)`);
      assert.ok(Math.abs(std - 0.02) < 0.002 && Math.abs(mean) < 0.002);
      assert.ok(
        p
          .get('model.norm.weight')!
          .toFloat32Array()
          .every((x) => x === 1),
      );
    } finally {
      m.dispose();
    }
    const bad = cli('init', '--like', 'llama-huge', '--tokenizer', tokDir, '--out', join(dir, 'x'));
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /architecture "llama-huge" is not known; choose one of llama-tiny, smollm2-135m/);
    const notEmpty = cli('init', '--like', 'llama-tiny', '--tokenizer', tokDir, '--out', join(dir, 'a'));
    assert.match(notEmpty.stderr, /is not empty/);
  },
);

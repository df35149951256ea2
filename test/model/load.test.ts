// Loading checks: sharded == single-file, medlora-written safetensors read back bit-exact, and every kind of bad
// checkpoint (corrupt, truncated, missing / extra / mis-shaped weight, unknown model_type) is a clear MedloraError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/model/load.js';
import { openCheckpoint, readAll, writeSafetensors, writeSharded, type TensorData } from '../../src/io/safetensors.js';
import { MedloraError } from '../../src/util/errors.js';
import { refDir, skipNoShared } from './fixtures.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'medlora-load-'));
}

/** a copy of llama-tiny's config.json (optionally edited) in a fresh folder */
function withConfig(edit: (c: Record<string, unknown>) => void = () => {}): string {
  const d = tmp();
  const c = JSON.parse(readFileSync(join(refDir('llama-tiny'), 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(join(d, 'config.json'), JSON.stringify(c));
  return d;
}

function tensorsOf(name: string): Record<string, TensorData> {
  return readAll(openCheckpoint(refDir(name)));
}

function paramBytes(dir: string): Map<string, Uint8Array> {
  const m = loadModel(dir);
  try {
    return new Map(m.namedParameters().map(([k, t]) => [k, t.toBytes()]));
  } finally {
    m.dispose();
  }
}

function throwsClear(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MedloraError, `expected a MedloraError, got ${String(e)}`);
    console.log(`  error: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

test('sharded checkpoint loads to the same tensors as the single file', { skip: skipNoShared }, () => {
  const d = withConfig();
  try {
    const files = writeSharded(d, tensorsOf('llama-tiny'), 100_000);
    assert.ok(files.length >= 3, `expected several shards, got ${files.length}`);
    const a = paramBytes(refDir('llama-tiny'));
    const b = paramBytes(d);
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    for (const [k, v] of a) assert.ok(Buffer.from(v).equals(Buffer.from(b.get(k)!)), `tensor ${k} differs`);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test(
  'a safetensors file written by medlora from model parameters is read back bit-exact',
  { skip: skipNoShared },
  () => {
    for (const name of ['llama-tiny', 'llama-tiny-bf16']) {
      const m = loadModel(refDir(name));
      const d = tmp();
      try {
        copyFileSync(join(refDir(name), 'config.json'), join(d, 'config.json'));
        const out: Record<string, TensorData> = {};
        for (const [k, t] of m.namedParameters())
          out[k] = { dtype: t.dtype === 'bf16' ? 'BF16' : 'F32', shape: [...t.shape], data: t.toBytes() };
        writeSafetensors(join(d, 'model.safetensors'), out);
        const back = paramBytes(d);
        for (const [k, v] of Object.entries(out))
          assert.ok(Buffer.from(v.data).equals(Buffer.from(back.get(k)!)), `${name}: ${k} differs`);
        // and equal to the original file's bytes
        const orig = tensorsOf(name);
        for (const [k, v] of Object.entries(orig))
          assert.ok(Buffer.from(v.data).equals(Buffer.from(back.get(k)!)), `${name}: ${k} differs from the fixture`);
      } finally {
        m.dispose();
        rmSync(d, { recursive: true, force: true });
      }
    }
  },
);

test('missing weight: error names the key', { skip: skipNoShared }, () => {
  const d = withConfig();
  try {
    const t = tensorsOf('llama-tiny');
    delete t['model.layers.1.mlp.up_proj.weight'];
    writeSafetensors(join(d, 'model.safetensors'), t);
    throwsClear(() => loadModel(d), /missing weight 'model\.layers\.1\.mlp\.up_proj\.weight'/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('unexpected weight: error names the key', { skip: skipNoShared }, () => {
  const d = withConfig();
  try {
    const t = tensorsOf('llama-tiny');
    t['model.layers.0.self_attn.q_norm.weight'] = { dtype: 'F32', shape: [2], data: new Uint8Array(8) };
    writeSafetensors(join(d, 'model.safetensors'), t);
    throwsClear(() => loadModel(d), /unexpected weight 'model\.layers\.0\.self_attn\.q_norm\.weight'/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('config/weights mismatch: shape error names the key and both shapes', { skip: skipNoShared }, () => {
  const d = withConfig((c) => {
    c.intermediate_size = 128;
  });
  try {
    copyFileSync(join(refDir('llama-tiny'), 'model.safetensors'), join(d, 'model.safetensors'));
    throwsClear(
      () => loadModel(d),
      /weight 'model\.layers\.0\.mlp\.(down|gate|up)_proj\.weight' has shape \[\d+, \d+\], expected \[\d+, \d+\]/,
    );
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('more layers in config than in the file: missing weight', { skip: skipNoShared }, () => {
  const d = withConfig((c) => {
    c.num_hidden_layers = 3;
  });
  try {
    copyFileSync(join(refDir('llama-tiny'), 'model.safetensors'), join(d, 'model.safetensors'));
    throwsClear(() => loadModel(d), /missing weight 'model\.layers\.2\./);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('truncated and corrupt safetensors: clear errors, no crash', { skip: skipNoShared }, () => {
  const d = withConfig();
  try {
    const f = join(d, 'model.safetensors');
    copyFileSync(join(refDir('llama-tiny'), 'model.safetensors'), f);
    truncateSync(f, 400_000);
    throwsClear(() => loadModel(d), /model\.safetensors/);
    // garbage header length
    const bytes = readFileSync(join(refDir('llama-tiny'), 'model.safetensors'));
    const bad = Buffer.from(bytes);
    bad.writeBigUInt64LE(0xffffffffn, 0);
    writeFileSync(f, bad);
    throwsClear(() => loadModel(d), /header length/);
    // header that is not JSON
    const bad2 = Buffer.from(bytes);
    bad2.write('}}}}', 8);
    writeFileSync(f, bad2);
    throwsClear(() => loadModel(d), /model\.safetensors/);
    // empty file
    writeFileSync(f, new Uint8Array(0));
    throwsClear(() => loadModel(d), /model\.safetensors/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('unknown model_type and missing weights file: clear errors', { skip: skipNoShared }, () => {
  const d = withConfig((c) => {
    c.model_type = 'falcon';
  });
  try {
    throwsClear(() => loadModel(d), /model_type "falcon" is not supported/);
    const d2 = withConfig();
    try {
      throwsClear(() => loadModel(d2), /no model\.safetensors or model\.safetensors\.index\.json/);
    } finally {
      rmSync(d2, { recursive: true, force: true });
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test(
  'tie_word_embeddings with an lm_head.weight in the file: ignored as transformers does; the head is the embedding',
  { skip: skipNoShared },
  () => {
    const d = tmp();
    try {
      copyFileSync(join(refDir('llama3-tiny-tied'), 'config.json'), join(d, 'config.json'));
      const t = tensorsOf('llama3-tiny-tied');
      const emb = t['model.embed_tokens.weight']!;
      t['lm_head.weight'] = { dtype: 'F32', shape: [...emb.shape], data: new Uint8Array(emb.data.byteLength) }; // zeros
      writeSafetensors(join(d, 'model.safetensors'), t);
      const m = loadModel(d);
      try {
        const head = (m as unknown as { lm_head: { weight: { toBytes(): Uint8Array } } }).lm_head.weight.toBytes();
        assert.ok(Buffer.from(head).equals(Buffer.from(emb.data)));
      } finally {
        m.dispose();
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  },
);

test(
  'GPT-2 checkpoints without the "transformer." prefix and with attn.bias buffers load (as transformers does)',
  { skip: skipNoShared },
  () => {
    const d = tmp();
    try {
      copyFileSync(join(refDir('gpt2-tiny'), 'config.json'), join(d, 'config.json'));
      const t = tensorsOf('gpt2-tiny');
      const stripped: Record<string, TensorData> = {};
      for (const [k, v] of Object.entries(t)) stripped[k.replace(/^transformer\./, '')] = v;
      stripped['h.0.attn.bias'] = { dtype: 'F32', shape: [1], data: new Uint8Array(4) };
      writeSafetensors(join(d, 'model.safetensors'), stripped);
      const a = paramBytes(refDir('gpt2-tiny'));
      const b = paramBytes(d);
      for (const [k, v] of a) assert.ok(Buffer.from(v).equals(Buffer.from(b.get(k)!)), `tensor ${k} differs`);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  },
);

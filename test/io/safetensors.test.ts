// Safetensors reader/writer on real files (swift-transformers samples, the reference checkpoints) and on hand-built
// corrupt files: each corruption must give a clear error naming the file and the tensor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { MedloraError } from '../../src/util/errors.js';
import {
  findDuplicateKey,
  openCheckpoint,
  readAll,
  SafetensorsFile,
  writeSafetensors,
  writeSharded,
  type TensorData,
} from '../../src/io/safetensors.js';
import { bytesToNumbers, typedBytes } from '../../src/io/dtype.js';

const skip = hasShared() ? false : 'no ../shared fixtures';
const tmp = (): string => mkdtempSync(join(tmpdir(), 'medlora-st-'));

test('swift-transformers samples decode to their documented values', { skip }, () => {
  const s = (f: string): SafetensorsFile =>
    SafetensorsFile.open(sharedPath('fixtures', 'hf', 'safetensors-samples', f));
  const cases: Array<[string, string, number[], number[]]> = [
    ['tensor-1d-int32.safetensors', 'I32', [3], [1, 2, 3]],
    ['tensor-2d-float64.safetensors', 'F64', [2, 3], [1, 2, 3, 24, 25, 26]],
    ['tensor-3d-float32.safetensors', 'F32', [2, 2, 3], [22, 23, 24, 11, 12, 13, 2, 3, 4, 1, 2, 3]],
    [
      'tensor-4d-float32.safetensors',
      'F32',
      [2, 3, 1, 3],
      [11, 12, 13, 1, 2, 3, 4, 5, 6, 22, 23, 24, 15, 16, 17, 17, 18, 19],
    ],
  ];
  for (const [file, dtype, shape, values] of cases) {
    const f = s(file);
    assert.deepEqual(f.names(), ['embedding']);
    const i = f.info('embedding');
    assert.equal(i.dtype, dtype);
    assert.deepEqual(i.shape, shape);
    // data starts after the 8-byte length and the header; the 1d file's header is 64 bytes (from its first 8 bytes)
    if (file === 'tensor-1d-int32.safetensors') assert.equal(i.byteOffset, 72);
    assert.deepEqual([...bytesToNumbers(i.dtype, f.read('embedding'))], values, file);
  }
});

/** Expected HF shapes for a config, written out from the model definitions (Linear weight = [out, in]). */
function expectedShapes(c: Record<string, number | boolean | string>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  if (c.model_type === 'gpt2') {
    const d = c.n_embd as number,
      L = c.n_layer as number;
    out['transformer.wte.weight'] = [c.vocab_size as number, d];
    out['transformer.wpe.weight'] = [c.n_positions as number, d];
    for (let i = 0; i < L; i++) {
      const p = `transformer.h.${i}.`;
      // GPT-2 Conv1D stores weights as [in, out]
      out[`${p}attn.c_attn.weight`] = [d, 3 * d];
      out[`${p}attn.c_attn.bias`] = [3 * d];
      out[`${p}attn.c_proj.weight`] = [d, d];
      out[`${p}mlp.c_fc.weight`] = [d, 4 * d];
      out[`${p}mlp.c_proj.weight`] = [4 * d, d];
    }
    return out;
  }
  const d = c.hidden_size as number,
    h = c.num_attention_heads as number,
    kv = c.num_key_value_heads as number;
  const hd = d / h,
    ff = c.intermediate_size as number,
    V = c.vocab_size as number;
  out['model.embed_tokens.weight'] = [V, d];
  if (!c.tie_word_embeddings) out['lm_head.weight'] = [V, d];
  for (let i = 0; i < (c.num_hidden_layers as number); i++) {
    const p = `model.layers.${i}.`;
    out[`${p}self_attn.q_proj.weight`] = [h * hd, d];
    out[`${p}self_attn.k_proj.weight`] = [kv * hd, d];
    out[`${p}self_attn.v_proj.weight`] = [kv * hd, d];
    out[`${p}self_attn.o_proj.weight`] = [d, h * hd];
    out[`${p}mlp.gate_proj.weight`] = [ff, d];
    out[`${p}mlp.up_proj.weight`] = [ff, d];
    out[`${p}mlp.down_proj.weight`] = [d, ff];
    out[`${p}input_layernorm.weight`] = [d];
    if (c.model_type === 'qwen2') out[`${p}self_attn.k_proj.bias`] = [kv * hd];
  }
  return out;
}

test('reference checkpoints: shapes agree with config.json, dtype as torch_dtype says', { skip }, () => {
  const root = sharedPath('fixtures', 'reference');
  const folders = readdirSync(root).filter((f) => !f.includes('.'));
  assert.ok(folders.length >= 5);
  for (const f of folders) {
    const cfg = JSON.parse(readFileSync(join(root, f, 'config.json'), 'utf8')) as Record<
      string,
      number | boolean | string
    >;
    const ck = openCheckpoint(join(root, f));
    assert.equal(ck.metadata.format, 'pt');
    for (const [name, shape] of Object.entries(expectedShapes(cfg))) {
      assert.deepEqual(ck.info(name).shape, shape, `${f}: ${name}`);
    }
    const want = cfg.torch_dtype === 'bfloat16' ? 'BF16' : 'F32';
    for (const n of ck.names()) assert.equal(ck.info(n).dtype, want, `${f}: ${n}`);
    if (cfg.tie_word_embeddings) assert.equal(ck.has('lm_head.weight'), false, `${f}: tied model has no lm_head`);
  }
});

test('write -> read back is bit-exact, keys sorted, header 8-byte aligned', { skip }, () => {
  const d = tmp();
  try {
    const src = openCheckpoint(sharedPath('fixtures', 'reference', 'qwen2-tiny'));
    const all = readAll(src);
    const out = join(d, 'copy.safetensors');
    writeSafetensors(out, all, { format: 'pt' });
    const back = SafetensorsFile.open(out);
    assert.deepEqual(back.names(), src.names());
    assert.deepEqual(back.metadata, { format: 'pt' });
    for (const n of src.names()) {
      assert.deepEqual(back.info(n).shape, src.info(n).shape);
      assert.ok(Buffer.from(back.read(n)).equals(Buffer.from(all[n]!.data)), n);
    }
    const bytes = readFileSync(out);
    const hlen = Number(bytes.readBigUInt64LE(0));
    assert.equal(hlen % 8, 0);
    const header = bytes.subarray(8, 8 + hlen).toString('utf8');
    assert.match(header, / *$/);
    const keys = Object.keys(JSON.parse(header) as object).filter((k) => k !== '__metadata__');
    assert.deepEqual(keys, [...keys].sort());
    // total size: header + the sum of the tensors, nothing else
    const dataBytes = Object.values(all).reduce((s, t) => s + t.data.byteLength, 0);
    assert.equal(bytes.byteLength, 8 + hlen + dataBytes);
    // no temp files left behind
    assert.deepEqual(readdirSync(d), ['copy.safetensors']);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('rewriting a file produced by the Python reference writer gives the same bytes', { skip }, () => {
  // make_reference.py's save_st: sorted keys, compact JSON, space padding to 8 bytes (no metadata in adapters)
  const d = tmp();
  try {
    const orig = sharedPath('fixtures', 'reference', 'gpt2-tiny', 'adapter', 'adapter_model.safetensors');
    const out = join(d, 'a.safetensors');
    writeSafetensors(out, readAll(SafetensorsFile.open(orig)));
    assert.ok(readFileSync(out).equals(readFileSync(orig)));
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('sharded and single-file checkpoints present identical tensors', { skip }, () => {
  const d = tmp();
  try {
    const all = readAll(openCheckpoint(sharedPath('fixtures', 'reference', 'llama-tiny')));
    const files = writeSharded(join(d, 'sharded'), all, 100_000);
    assert.ok(files.length > 2, `${files.length} shards`);
    assert.equal(files[0], `model-00001-of-${String(files.length).padStart(5, '0')}.safetensors`);
    writeSafetensors(join(d, 'single', 'model.safetensors'), all);
    const a = openCheckpoint(join(d, 'sharded'));
    const b = openCheckpoint(join(d, 'single'));
    assert.deepEqual(a.names(), b.names());
    for (const n of a.names()) {
      assert.deepEqual(a.info(n).shape, b.info(n).shape);
      assert.ok(Buffer.from(a.read(n)).equals(Buffer.from(b.read(n))), n);
    }
    const index = JSON.parse(readFileSync(join(d, 'sharded', 'model.safetensors.index.json'), 'utf8')) as {
      metadata: { total_size: number };
    };
    assert.equal(
      index.metadata.total_size,
      Object.values(all).reduce((s, t) => s + t.data.byteLength, 0),
    );
    // a shard that goes missing is named
    rmSync(join(d, 'sharded', files[1]!));
    assert.throws(() => openCheckpoint(join(d, 'sharded')), new RegExp(`shard ${files[1]} .*is missing`));
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('a tensor in two shards is an error naming both', () => {
  const d = tmp();
  try {
    const t: TensorData = { dtype: 'F32', shape: [2], data: typedBytes(new Float32Array([1, 2])) };
    writeSafetensors(join(d, 'a.safetensors'), { x: t, y: t });
    writeSafetensors(join(d, 'b.safetensors'), { x: t });
    writeFileSync(
      join(d, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { x: 'b.safetensors', y: 'a.safetensors' } }),
    );
    assert.throws(
      () => openCheckpoint(d),
      /tensor 'x' is in two shards: .*a\.safetensors and b\.safetensors|tensor 'x' is in two shards: b\.safetensors and a\.safetensors/,
    );
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

/** A file from a header (object or raw text) and a data area. */
function rawFile(dir: string, header: object | string, data: Uint8Array, lengthOverride?: bigint): string {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(h.byteLength));
  const p = join(dir, 'bad.safetensors');
  writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

test('corrupt files give clear errors naming the file and tensor', () => {
  const d = tmp();
  const bad = (header: object | string, data: Uint8Array, re: RegExp, lengthOverride?: bigint): void => {
    const p = rawFile(d, header, data, lengthOverride);
    assert.throws(
      () => SafetensorsFile.open(p),
      (e: unknown) => {
        assert.ok(e instanceof MedloraError, `not a MedloraError: ${String(e)}`);
        assert.match(e.message, re);
        assert.ok(e.message.includes('bad.safetensors'), `file not named: ${e.message}`);
        return true;
      },
    );
  };
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  try {
    // truncated: shorter than the 8-byte length
    writeFileSync(join(d, 'bad.safetensors'), Buffer.from([1, 2, 3]));
    assert.throws(() => SafetensorsFile.open(join(d, 'bad.safetensors')), /only 3 bytes/);
    bad(ok, new Uint8Array(8), /header length 9999 goes past the end of the file/, 9999n);
    bad(ok, new Uint8Array(8), /exceeds the 100000000-byte limit/, 200_000_000n);
    bad('{"w": {"dtype": "F32", ', new Uint8Array(0), /header is not valid JSON/);
    bad('[1, 2]', new Uint8Array(0), /header must be a JSON object/);
    // data area shorter than the offsets (truncated tensor data)
    bad(ok, new Uint8Array(4), /tensor 'w': data_offsets \[0, 8\] go past the end of the data area \(4 bytes/);
    bad(
      { w: { dtype: 'F32', shape: [2], data_offsets: [8, 4] } },
      new Uint8Array(8),
      /tensor 'w': data_offsets \[8, 4\] end before begin/,
    );
    bad(
      { w: { dtype: 'F32', shape: [2], data_offsets: [0, -8] } },
      new Uint8Array(8),
      /tensor 'w': data_offsets must be/,
    );
    bad(
      { 'lm_head.weight': { dtype: 'F32', shape: [16, 32], data_offsets: [0, 1024] } },
      new Uint8Array(1024),
      /tensor 'lm_head.weight' has 1024 bytes but shape \[16,32\] x F32 needs 2048/,
    );
    bad(
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
      new Uint8Array(12),
      /tensors 'a' and 'b' overlap/,
    );
    bad(
      '{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}',
      new Uint8Array(8),
      /key 'w' twice/,
    );
    bad(
      { w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } },
      new Uint8Array(2),
      /tensor 'w': unknown dtype "F8_E4M3"/,
    );
    bad(
      { w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } },
      new Uint8Array(8),
      /tensor 'w': shape must be a list of non-negative integers/,
    );
    bad({ w: { dtype: 'F32', shape: [2.5], data_offsets: [0, 8] } }, new Uint8Array(8), /shape must be/);
    bad({ __metadata__: { n: 3 }, ...ok }, new Uint8Array(8), /__metadata__\.n must be a string/);
    // invalid UTF-8 in the header
    const p = join(d, 'bad.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    writeFileSync(p, Buffer.concat([len, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]));
    assert.throws(() => SafetensorsFile.open(p), /not valid UTF-8/);
    // asking for a missing tensor
    const good = rawFile(d, ok, new Uint8Array(8));
    assert.throws(() => SafetensorsFile.open(good).info('v'), /no tensor named 'v'/);
    assert.throws(() => openCheckpoint(d), /no model\.safetensors or model\.safetensors\.index\.json/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('zero-size tensors and gaps are fine; writer rejects wrong byte counts', () => {
  const d = tmp();
  try {
    const p = rawFile(
      d,
      {
        e: { dtype: 'F32', shape: [0, 4], data_offsets: [0, 0] },
        w: { dtype: 'I8', shape: [2], data_offsets: [0, 2] },
      },
      new Uint8Array([5, 250]),
    );
    const f = SafetensorsFile.open(p);
    assert.equal(f.read('e').byteLength, 0);
    assert.deepEqual([...bytesToNumbers('I8', f.read('w'))], [5, -6]);
    assert.throws(
      () => writeSafetensors(join(d, 'x.safetensors'), { w: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } }),
      /tensor 'w' has 8 bytes but shape \[3\] x F32 needs 12/,
    );
    assert.throws(
      () =>
        writeSafetensors(join(d, 'x.safetensors'), {
          w: { dtype: 'Q4' as 'F32', shape: [1], data: new Uint8Array(1) },
        }),
      /unknown dtype/,
    );
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('findDuplicateKey sees through escapes and nesting', () => {
  assert.equal(findDuplicateKey('{"a": 1, "b": {"a": 2}}'), undefined);
  assert.equal(findDuplicateKey('{"a": 1, "\\u0061": 2}'), 'a');
  assert.equal(findDuplicateKey('{"x": ["a", "a"], "y": {"k": 1, "k": 2}}'), 'k');
  assert.equal(findDuplicateKey('{"q\\"": 1, "q\\"": 2}'), 'q"');
});

// GGUF export without llama.cpp: q8_0 bytes bit-exact with gguf-py's quantizer, the file read back by an independent
// reader (@huggingface/gguf), the q/k row permutation checked against a reshape/transpose done by the engine, the
// pre-tokenizer names of real tokenizers, the Ollama Modelfile template derivation on real chat templates, and the
// CLI (one JSON document with --json, Modelfile, clear refusals).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf as readGguf } from '@huggingface/gguf';
import { dequantizeQ8_0, encodeTensor, quantizeQ8_0 } from '../../src/export/gguf-quant.js';
import { gguf, writeGguf } from '../../src/export/gguf-writer.js';
import { exportGguf, permuteQK } from '../../src/export/gguf-model.js';
import { preTokenizerName, readTokenizerJson } from '../../src/export/gguf-tokenizer.js';
import { buildModelfile, goTemplate, probeChatTemplate, renderWithWrappers } from '../../src/export/ollama.js';
import { loadTokenizer, renderChatTemplate } from '../../src/tokenize/tokenizer.js';
import { openCheckpoint, SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { bytesAsF32, bytesAsU16, f16ToF32 } from '../../src/io/dtype.js';
import { fromBytes, scope } from '../../src/tensor/index.js';
import { MedloraError } from '../../src/util/errors.js';
import { packageRoot, sharedPath } from '../../src/util/paths.js';
import { skipNoShared } from '../model/fixtures.js';
import { CHATML_TEMPLATE, makeByteTokenizer, makeStoriesTokenizer } from './fixtures.js';
import { DEMO_CHAT_TEMPLATE } from '../../src/demo/tokenizer.js';

const tmp = mkdtempSync(join(tmpdir(), 'medlora-gguf-fmt-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const hf = (d: string): string => sharedPath('fixtures', 'hf', d);

function medlora(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'medlora.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test("q8_0: bytes bit-exact with gguf-py's quantizer (test/fixtures/gguf/q8_0.json); dequantized error <= d/2", () => {
  const fx = JSON.parse(readFileSync(join(packageRoot(), 'test', 'fixtures', 'gguf', 'q8_0.json'), 'utf8')) as {
    input: number[];
    q8_0_hex: string;
  };
  const x = Float32Array.from(fx.input);
  const mine = Buffer.from(quantizeQ8_0(x, 32, 'fixture')).toString('hex');
  const diffAt = [...mine].findIndex((c, i) => c !== fx.q8_0_hex[i]);
  console.log(
    `  ${x.length / 32} blocks, ${mine.length / 2} bytes, ${diffAt < 0 ? 'identical' : `first differing hex digit ${diffAt}`}`,
  );
  assert.equal(mine, fx.q8_0_hex);
  const back = dequantizeQ8_0(Buffer.from(mine, 'hex'));
  for (let b = 0; b < 5; b++) {
    let amax = 0,
      err = 0;
    for (let j = 0; j < 32; j++) {
      amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
      err = Math.max(err, Math.abs(back[b * 32 + j]! - x[b * 32 + j]!));
    }
    assert.ok(err <= (amax / 127) * 0.5 + amax * 1e-3, `block ${b}: error ${err} for d ${amax / 127}`);
  }
  // a checker that can fail: one flipped value changes the bytes
  const y = Float32Array.from(x);
  y[7] = y[7]! + 0.5;
  assert.notEqual(Buffer.from(quantizeQ8_0(y, 32, 'fixture')).toString('hex'), fx.q8_0_hex);
});

test('f16 encoding refuses values that overflow (no silent inf); q8_0 refuses rows not a multiple of 32', () => {
  assert.throws(
    () => encodeTensor(Float32Array.from([1, 70000]), 'F16', 2, 'w'),
    (e: unknown) => e instanceof MedloraError && /w: value 70000 at index 1 overflows float16/.test(e.message),
  );
  assert.throws(() => quantizeQ8_0(new Float32Array(48), 48, 'w'), /multiple of 32/);
});

test('writer: @huggingface/gguf reads back every metadata kind, tensor shapes (innermost first), types and aligned data', async () => {
  const file = join(tmp, 'kinds.gguf');
  const a = Float32Array.from({ length: 6 }, (_, i) => i - 2.5);
  const b = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
  writeGguf(
    file,
    [
      ['general.architecture', gguf.str('llama')],
      ['t.u32', gguf.u32(4000000000)],
      ['t.i32', gguf.i32(-7)],
      ['t.f32', gguf.f32(0.25)],
      ['t.bool', gguf.bool(true)],
      ['t.u64', gguf.u64(2 ** 40)],
      ['t.strs', gguf.arr('string', ['a b', 'ü', ''])],
      ['t.ints', gguf.arr('i32', [1, -2, 3])],
    ],
    [
      { name: 'a', shape: [2, 3], type: 'F32', data: () => encodeTensor(a, 'F32', 3, 'a') },
      { name: 'b', shape: [2, 32], type: 'Q8_0', data: () => encodeTensor(b, 'Q8_0', 32, 'b') },
      { name: 'c', shape: [3], type: 'F16', data: () => encodeTensor(Float32Array.from([1, 2, 3]), 'F16', 3, 'c') },
    ],
  );
  const r = await readGguf(file, { allowLocalFile: true });
  const md = r.metadata as Record<string, unknown>;
  assert.equal(md.version, 3);
  assert.equal(md['general.architecture'], 'llama');
  assert.equal(md['t.u32'], 4000000000);
  assert.equal(md['t.i32'], -7);
  assert.equal(md['t.f32'], 0.25);
  assert.equal(md['t.bool'], true);
  assert.equal(BigInt(md['t.u64'] as bigint), 2n ** 40n);
  assert.deepEqual(md['t.strs'], ['a b', 'ü', '']);
  assert.deepEqual(md['t.ints'], [1, -2, 3]);
  assert.deepEqual(
    r.tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype]),
    [
      ['a', [3, 2], 0],
      ['b', [32, 2], 8],
      ['c', [3], 1],
    ],
  );
  const raw = readFileSync(file);
  for (const t of r.tensorInfos)
    assert.equal((Number(r.tensorDataOffset) + Number(t.offset)) % 32, 0, `${t.name} aligned`);
  const at = (i: number, n: number): Buffer =>
    raw.subarray(
      Number(r.tensorDataOffset) + Number(r.tensorInfos[i]!.offset),
      Number(r.tensorDataOffset) + Number(r.tensorInfos[i]!.offset) + n,
    );
  assert.deepEqual([...new Float32Array(new Uint8Array(at(0, 24)).buffer)], [...a]);
  const deq = dequantizeQ8_0(new Uint8Array(at(1, 68)));
  assert.ok(
    deq.every((v, i) => Math.abs(v - b[i]!) <= 0.5 / 127 + 1e-6),
    'q8_0 data within half a step of |sin| <= 1',
  );
});

test('q/k permutation equals reshape(heads, 2, hd/2, cols).transpose(1, 2) computed by the engine', () => {
  const heads = 3,
    hd = 4,
    cols = 5;
  const x = Float32Array.from({ length: heads * hd * cols }, (_, i) => i);
  const mine = permuteQK(x, heads, cols);
  const engine = scope(
    () =>
      new Float32Array(
        bytesAsF32(
          fromBytes(new Uint8Array(x.buffer), 'f32', [heads * hd, cols])
            .reshape([heads, 2, hd / 2, cols])
            .transpose(1, 2)
            .contiguous()
            .reshape([heads * hd, cols])
            .toBytes(),
        ),
      ),
  );
  assert.deepEqual([...mine], [...engine]);
  assert.notDeepEqual([...mine], [...x]);
});

test(
  'stories260K f16 export: metadata and tensors read back with @huggingface/gguf; q rows permuted, f16 values round-trip',
  { skip: skipNoShared },
  async () => {
    const tokDir = join(tmp, 'stok');
    makeStoriesTokenizer(tokDir);
    const file = join(tmp, 'stories-f16.gguf');
    const rep = exportGguf({ model: hf('stories260K-hf'), tokenizer: tokDir, out: file, type: 'f16' });
    const r = await readGguf(file, { allowLocalFile: true });
    const md = r.metadata as Record<string, unknown>;
    const want: Record<string, unknown> = {
      'general.architecture': 'llama',
      'general.type': 'model',
      'general.file_type': 1,
      'llama.context_length': 512,
      'llama.embedding_length': 64,
      'llama.block_count': 5,
      'llama.feed_forward_length': 172,
      'llama.attention.head_count': 8,
      'llama.attention.head_count_kv': 4,
      'llama.rope.dimension_count': 8,
      'llama.vocab_size': 512,
      'tokenizer.ggml.model': 'llama',
      'tokenizer.ggml.bos_token_id': 1,
      'tokenizer.ggml.eos_token_id': 2,
      'tokenizer.ggml.unknown_token_id': 0,
      'tokenizer.ggml.add_bos_token': true,
      'tokenizer.ggml.add_space_prefix': true,
    };
    for (const [k, v] of Object.entries(want)) assert.equal(md[k], v, k);
    assert.ok(Math.abs((md['llama.attention.layer_norm_rms_epsilon'] as number) - 1e-5) < 1e-10);
    const tokens = md['tokenizer.ggml.tokens'] as string[],
      types = md['tokenizer.ggml.token_type'] as number[];
    assert.equal(tokens.length, 512);
    assert.deepEqual(
      [tokens[1], types[1], tokens[13], types[13], tokens[259], types[259]],
      ['<s>', 3, '<0x0A>', 6, '\u2581t', 1],
    );
    assert.equal(md['tokenizer.chat_template'], CHATML_TEMPLATE);
    assert.equal(r.tensorInfos.length, rep.tensors);
    const info = (n: string): (typeof r.tensorInfos)[number] => r.tensorInfos.find((t) => t.name === n)!;
    assert.deepEqual(info('token_embd.weight').shape.map(Number), [64, 512]);
    assert.equal(info('blk.0.attn_norm.weight').dtype, 0); // norms stay F32
    assert.equal(info('blk.0.attn_k.weight').dtype, 1);
    assert.deepEqual(info('blk.0.attn_k.weight').shape.map(Number), [64, 32]);
    assert.equal(
      r.tensorInfos.some((t) => t.name === 'output.weight'),
      false,
      'tied embeddings: no output.weight',
    );
    // q rows in the file = HF rows permuted per head, in f16
    const raw = readFileSync(file);
    const q = info('blk.0.attn_q.weight');
    const start = Number(r.tensorDataOffset) + Number(q.offset);
    const inFile = f16ToF32(bytesAsU16(new Uint8Array(raw.subarray(start, start + 64 * 64 * 2))));
    const src = openCheckpoint(hf('stories260K-hf'));
    const hfq = new Float32Array(bytesAsF32(src.read('model.layers.0.self_attn.q_proj.weight')));
    const expected = permuteQK(hfq, 8, 64);
    let maxDiff = 0,
      maxUnpermuted = 0;
    for (let i = 0; i < inFile.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(inFile[i]! - expected[i]!));
      maxUnpermuted = Math.max(maxUnpermuted, Math.abs(inFile[i]! - hfq[i]!));
    }
    console.log(
      `  attn_q: max |file - permuted HF| = ${maxDiff.toExponential(2)} (f16 rounding); vs unpermuted ${maxUnpermuted.toFixed(3)}`,
    );
    assert.ok(maxDiff < 2e-3);
    assert.ok(maxUnpermuted > 0.05);
  },
);

test(
  'pre-tokenizer names of real tokenizers (llama.cpp llama-vocab.cpp names); an unknown one is refused',
  { skip: skipNoShared },
  () => {
    const name = (d: string): string => preTokenizerName(readTokenizerJson(hf(d)), d);
    assert.equal(name('gpt2'), 'gpt-2');
    assert.equal(name('SmolLM2-135M-Instruct'), 'smollm');
    assert.equal(name('Qwen2.5-0.5B-Instruct'), 'qwen2');
    assert.equal(name('Meta-Llama-3-8B-Instruct'), 'llama-bpe');
    // the GPT-NeoX tokenizer (NFC + ByteLevel): the converter's name for it is "olmo" (GPT-2's split in llama.cpp)
    assert.equal(name('stablelm-zephyr-3b'), 'olmo');
    assert.equal(name('pythia-70m-gpt-neox-tokenizer'), 'olmo');
    const nfkc = { ...readTokenizerJson(hf('stablelm-zephyr-3b')), normalizer: { type: 'NFKC' } };
    assert.throws(
      () => preTokenizerName(nfkc, 'nfkc/tokenizer.json'),
      (e: unknown) =>
        e instanceof MedloraError &&
        /nfkc\/tokenizer.json: normalizer NFKC .* not a pre-tokenizer medlora can name/.test(e.message),
    );
  },
);

test(
  'Ollama TEMPLATE: read off real chat templates by rendering them, checked on longer conversations',
  { skip: skipNoShared },
  () => {
    const probe = (tpl: string, bos = ''): ReturnType<typeof probeChatTemplate> =>
      probeChatTemplate(tpl, { bos_token: bos, eos_token: '</s>' });
    const llama3 = (JSON.parse(readFileSync(hf('chat-templates/llama3.json'), 'utf8')) as { chat_template: string })
      .chat_template;
    const w3 = probe(llama3);
    assert.deepEqual(w3.user, { pre: '<|start_header_id|>user<|end_header_id|>\n\n', post: '<|eot_id|>' });
    assert.equal(w3.generation, '<|start_header_id|>assistant<|end_header_id|>\n\n');
    const qwen = loadTokenizer(hf('Qwen2.5-0.5B-Instruct'));
    const wq = probe(qwen.chatTemplate!);
    assert.match(wq.defaultPrefix, /^<\|im_start\|>system\nYou are Qwen/);
    assert.deepEqual(wq.system, { pre: '<|im_start|>system\n', post: '<|im_end|>\n' });
    const wd = probe(DEMO_CHAT_TEMPLATE);
    assert.deepEqual(
      [wd.user, wd.assistant, wd.generation],
      [{ pre: '<|user|>\n', post: '\n' }, { pre: '<|assistant|>\n', post: '</s>' }, '<|assistant|>\n'],
    );
    // the model renders what the template renders on a conversation it was not derived from
    const conv = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Which drugs interact?' },
      { role: 'assistant', content: 'none' },
      { role: 'user', content: 'And now?' },
    ];
    assert.equal(
      renderWithWrappers(wq, conv, true),
      renderChatTemplate(qwen.chatTemplate!, conv, { add_generation_prompt: true }),
    );
    const go = goTemplate(wq);
    assert.match(go, /\{\{ else if eq \.Role "user" \}\}<\|im_start\|>user\n\{\{ \.Content \}\}<\|im_end\|>\n/);
    // Llama-2's template puts the system prompt inside the first user turn: no per-role model fits, so it is refused
    const llama2 = (JSON.parse(readFileSync(hf('chat-templates/llama2.json'), 'utf8')) as { chat_template: string })
      .chat_template;
    assert.throws(
      () => probe(llama2, '<s>'),
      (e: unknown) => e instanceof MedloraError && /chat template probe/.test(e.message),
    );
    // a checker that can fail: a template whose 3rd user turn differs from the 1st
    assert.throws(
      () =>
        probe(
          "{% for m in messages %}{% if loop.index0 == 2 %}!{% endif %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}",
        ),
      /chat template probe/,
    );
  },
);

test(
  'Modelfile: FROM, converted TEMPLATE, special stop tokens only, PARAMETER defaults from generation_config',
  { skip: skipNoShared },
  () => {
    const mf = buildModelfile({
      gguf: './m.gguf',
      tokenizer: loadTokenizer(hf('Qwen2.5-0.5B-Instruct')),
      modelDir: hf('Qwen2.5-0.5B-Instruct'),
      contextLength: 32768,
    });
    assert.equal(mf.template, 'converted');
    assert.match(mf.text, /^# .*\nFROM \.\/m\.gguf\nTEMPLATE """/);
    assert.deepEqual(mf.stops.sort(), ['<|endoftext|>', '<|im_end|>']);
    assert.match(
      mf.text,
      /PARAMETER temperature 0\.7\nPARAMETER top_p 0\.8\nPARAMETER top_k 20\nPARAMETER repeat_penalty 1\.1\nPARAMETER num_ctx 8192\n$/,
    );
    // stablelm-zephyr-3b's generation_config eos_token_id is 10 (")"): not a special token, so not a stop
    const z = buildModelfile({
      gguf: './z.gguf',
      tokenizer: loadTokenizer(hf('stablelm-zephyr-3b')),
      modelDir: hf('stablelm-zephyr-3b'),
    });
    assert.deepEqual(z.stops, ['<|endoftext|>']);
    const l2 = buildModelfile({
      gguf: './l.gguf',
      tokenizer: loadTokenizer(hf('Llama-2-70b-chat-hf')),
      modelDir: hf('Llama-2-70b-chat-hf'),
    });
    assert.equal(l2.template, 'none');
    assert.ok(l2.warning);
  },
);

test(
  'medlora export gguf (spawned): --json prints one JSON document on stdout, --ollama writes the Modelfile; clear refusals',
  { skip: skipNoShared },
  () => {
    const tokDir = join(tmp, 'cli-tok');
    makeByteTokenizer(tokDir, 256);
    const out = join(tmp, 'cli', 'new-folder', 'tiny.gguf'); // the folder is created
    const ok = medlora(
      'export',
      'gguf',
      '--model',
      sharedPath('fixtures', 'reference', 'llama-tiny'),
      '--adapter',
      join(sharedPath('fixtures', 'reference', 'llama-tiny'), 'adapter'),
      '--tokenizer',
      tokDir,
      '--out',
      out,
      '--type',
      'q8_0',
      '--json',
      '--ollama',
    );
    assert.equal(ok.code, 0, ok.err);
    const done = JSON.parse(ok.out) as {
      kind: string;
      tensors: number;
      by_type: Record<string, number>;
      fallbacks: string[];
      lora_modules: string[];
      modelfile: { path: string };
    };
    assert.equal(done.kind, 'model');
    assert.equal(done.lora_modules.length, 15);
    assert.deepEqual(done.by_type, { F32: 5, Q8_0: 14, F16: 2 });
    assert.equal(done.fallbacks.length, 2); // ffn_down rows of 176
    assert.ok(existsSync(done.modelfile.path));
    assert.match(readFileSync(done.modelfile.path, 'utf8'), /^# .*\nFROM \.\/tiny\.gguf\n(?!TEMPLATE)/);
    const text = medlora(
      'export',
      'gguf',
      '--model',
      sharedPath('fixtures', 'reference', 'llama-tiny'),
      '--tokenizer',
      tokDir,
      '--out',
      join(tmp, 't2.gguf'),
      '--type',
      'bf16',
    );
    assert.equal(text.code, 0, text.err);
    assert.match(
      text.out,
      /^wrote .*t2\.gguf: model \(arch llama, type bf16\), 21 tensors \((5 F32, 16 BF16|16 BF16, 5 F32)\), /,
    );
    // StableLM-2 12B's per-head q/k LayerNorms: medlora cannot run them, so it does not export them unchecked
    const qkNorm = join(tmp, 'stablelm-qk-norm');
    cpSync(join(packageRoot(), 'test', 'fixtures', 'stablelm-tiny'), qkNorm, { recursive: true });
    const qcfg = JSON.parse(readFileSync(join(qkNorm, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(qkNorm, 'config.json'), JSON.stringify({ ...qcfg, qk_layernorm: true }));
    const stablelm = medlora('export', 'gguf', '--model', qkNorm, '--tokenizer', tokDir, '--out', join(tmp, 'g.gguf'));
    assert.equal(stablelm.code, 1);
    assert.match(
      stablelm.err,
      /config\.json: qk_layernorm=true \(per-head q\/k LayerNorms, StableLM-2 12B\) is not supported/,
    );
    assert.equal(stablelm.err.trim().split('\n').length, 1, stablelm.err);
    const badType = medlora(
      'export',
      'gguf',
      '--model',
      hf('stories260K-hf'),
      '--out',
      join(tmp, 'x.gguf'),
      '--type',
      'q4_0',
    );
    assert.match(badType.err, /--type must be one of f32, f16, bf16, q8_0, got "q4_0"/);
    const noTok = medlora('export', 'gguf', '--model', hf('stories260K-hf'), '--out', join(tmp, 'x.gguf'));
    assert.equal(noTok.code, 1);
    assert.match(noTok.err, /which a GGUF needs; pass --tokenizer DIR/);
    const loraNoAdapter = medlora(
      'export',
      'gguf',
      '--model',
      hf('stories260K-hf'),
      '--out',
      join(tmp, 'x.gguf'),
      '--lora-only',
    );
    assert.match(loraNoAdapter.err, /--lora-only needs --adapter DIR/);
  },
);

test("adapters saved with PEFT's defaults (lm_head.base_layer.weight copy) export; a copy that differs is refused", () => {
  const fx = join(packageRoot(), 'test', 'fixtures', 'hf5', 'llama-tiny');
  const out = join(tmp, 'lm-head-lora.gguf');
  const rep = exportGguf({ model: fx, adapter: join(fx, 'adapter-lm-head'), loraOnly: true, out, type: 'f32' });
  assert.ok(existsSync(out) && rep.tensors > 0);
  // the same adapter with its stored base copy changed: PEFT would overwrite the head with it, medlora refuses
  const bad = join(tmp, 'adapter-lm-head-bad');
  cpSync(join(fx, 'adapter-lm-head'), bad, { recursive: true });
  const st = SafetensorsFile.open(join(bad, 'adapter_model.safetensors'));
  const key = st.names().find((n) => n.endsWith('lm_head.base_layer.weight'))!;
  assert.ok(key, 'the fixture adapter holds the PEFT base copy');
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Uint8Array }> = {};
  for (const n of st.names()) {
    const data = new Uint8Array(st.read(n));
    if (n === key) new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)[0]! += 0.5;
    tensors[n] = { dtype: 'F32', shape: st.info(n).shape, data };
  }
  writeSafetensors(join(bad, 'adapter_model.safetensors'), tensors);
  assert.throws(
    () => exportGguf({ model: fx, adapter: bad, loraOnly: true, out: join(tmp, 'bad.gguf'), type: 'f32' }),
    /lm_head\.base_layer\.weight.*differs from the model's/,
  );
});

// The ICSR schema task end to end on a tiny model: a training config with a `task:` section (configs/tasks/icsr.json)
// trains a tiny random Llama for a few LoRA steps on the hand-written gold set (test/fixtures/icsr-gold.jsonl), then
// `medlora eval --task-file` scores it field by field and `medlora extract --task-file` answers. A few steps do not
// learn the task; what is checked is the plumbing and that every constrained answer parses and validates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../src/util/paths.js';
import { manualSeed, ones, randn, type Tensor } from '../../src/tensor/index.js';
import { writeSafetensors, type TensorData } from '../../src/io/safetensors.js';
import { trainBpe, writeTrainedTokenizer } from '../../src/tokenize/bpe-train.js';
import { loadTaskFile, validate } from '../../src/data/tasks/index.js';
import type { MedRecord } from '../../src/data/schema.js';

const ROOT = packageRoot();
const BIN = join(ROOT, 'bin', 'medlora.js');
const TASK_FILE = join(ROOT, 'configs', 'tasks', 'icsr.json');

/** A 2-layer Llama (hidden 32) with N(0, 0.02) weights and tied embeddings, plus a byte-level BPE trained on `texts`. */
function tinyLlama(dir: string, texts: string[]): void {
  mkdirSync(dir, { recursive: true });
  const bpe = trainBpe(texts, { vocabSize: 384 });
  writeTrainedTokenizer(dir, bpe, { addBos: true });
  const V = bpe.vocab.size,
    H = 32,
    I = 64,
    L = 2,
    heads = 4,
    kv = 2,
    hd = H / heads;
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      vocab_size: V,
      hidden_size: H,
      intermediate_size: I,
      num_hidden_layers: L,
      num_attention_heads: heads,
      num_key_value_heads: kv,
      max_position_embeddings: 1024,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      hidden_act: 'silu',
      bos_token_id: bpe.vocab.get('<s>'),
      eos_token_id: bpe.vocab.get('</s>'),
      torch_dtype: 'float32',
    }),
  );
  manualSeed(0);
  const t: Record<string, TensorData> = {};
  const put = (k: string, x: Tensor): void => {
    t[k] = { dtype: 'F32', shape: [...x.shape], data: x.toBytes() };
    x.dispose();
  };
  put('model.embed_tokens.weight', randn([V, H]).mul(0.02));
  put('model.norm.weight', ones([H]));
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, ones([H]));
    put(`${p}.post_attention_layernorm.weight`, ones([H]));
    put(`${p}.self_attn.q_proj.weight`, randn([heads * hd, H]).mul(0.02));
    put(`${p}.self_attn.k_proj.weight`, randn([kv * hd, H]).mul(0.02));
    put(`${p}.self_attn.v_proj.weight`, randn([kv * hd, H]).mul(0.02));
    put(`${p}.self_attn.o_proj.weight`, randn([H, heads * hd]).mul(0.02));
    put(`${p}.mlp.gate_proj.weight`, randn([I, H]).mul(0.02));
    put(`${p}.mlp.up_proj.weight`, randn([I, H]).mul(0.02));
    put(`${p}.mlp.down_proj.weight`, randn([H, I]).mul(0.02));
  }
  writeSafetensors(join(dir, 'model.safetensors'), t);
}

test('ICSR task: config task section -> train a few steps -> eval (field-level scores, 100% valid) -> extract', () => {
  const work = mkdtempSync(join(tmpdir(), 'medlora-icsr-'));
  const taskDef = JSON.parse(readFileSync(TASK_FILE, 'utf8'));
  const task = loadTaskFile(TASK_FILE);
  const gold = readFileSync(join(ROOT, 'test', 'fixtures', 'icsr-gold.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as MedRecord);
  const model = join(work, 'model');
  tinyLlama(model, [task.instruction, ...gold.flatMap((r) => [r.input, task.render(r.gold)])]);
  const data = join(work, 'gold.jsonl');
  writeFileSync(data, gold.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const config = join(work, 'train.json');
  writeFileSync(
    config,
    JSON.stringify({
      model,
      output_dir: join(work, 'run'),
      task: taskDef,
      data: { train: data },
      lora: { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] },
      training: {
        max_steps: 4,
        per_device_train_batch_size: 3,
        learning_rate: 3e-3,
        logging_steps: 1,
        save_steps: null,
        seed: 1,
      },
    }),
  );
  let r = spawnSync(process.execPath, [BIN, 'train', '--config', config, '--threads', '1', '--quiet'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const resolved = JSON.parse(readFileSync(join(work, 'run', 'config.resolved.json'), 'utf8'));
  assert.deepEqual(resolved.task, taskDef, 'the task definition is saved with the run');

  // eval: every record's constrained answer parses and validates; scores are per JSON path
  r = spawnSync(
    process.execPath,
    [
      BIN,
      'eval',
      '--task-file',
      TASK_FILE,
      '--model',
      model,
      '--adapter',
      join(work, 'run', 'adapter'),
      '--data',
      data,
      '--max-new-tokens',
      '300',
      '--temperature',
      '1',
      '--seed',
      '3',
      '--no-loss',
      '--out',
      join(work, 'eval'),
      '--json',
      '--quiet',
      '--threads',
      '1',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const scores = JSON.parse(r.stdout);
  const preds = readFileSync(join(work, 'eval', 'predictions.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { output: string; unparsed: string[] });
  assert.equal(preds.length, gold.length);
  for (const p of preds) {
    assert.deepEqual(p.unparsed, [], p.output);
    assert.deepEqual(validate(task.resultSchema, JSON.parse(p.output)), [], p.output);
  }
  const metrics = scores.metrics ?? scores.score?.metrics ?? scores.runs?.[0]?.score?.metrics;
  assert.ok(metrics, `scores.json shape: ${Object.keys(scores)}`);
  for (const t of metrics.perType as Array<{ type: string }>)
    assert.match(t.type, /^(patient|suspect_drugs|reactions|seriousness)/);
  console.log(
    `  tiny model after 4 steps: ${preds.length}/${gold.length} answers parse and validate; micro F1 ${metrics.micro.f1.toFixed(3)} over ${metrics.perType.length} paths`,
  );

  // extract with the same task file
  r = spawnSync(
    process.execPath,
    [
      BIN,
      'extract',
      '--task-file',
      TASK_FILE,
      '--task',
      'icsr',
      '--model',
      model,
      '--adapter',
      join(work, 'run', 'adapter'),
      '--max-new-tokens',
      '300',
      '--quiet',
      '--threads',
      '1',
      gold[0]!.input,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n')[0]!);
  assert.equal(out.task, 'icsr');
  assert.deepEqual(validate(task.resultSchema, out.result), []);
});

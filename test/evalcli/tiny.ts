// Test fixture: a REAL tiny model folder run through the engine: a random-init Llama with the shape of
// ../shared/fixtures/reference/llama-tiny (2 layers, hidden 64) whose vocabulary is a byte-level BPE trained here by
// src/tokenize/bpe-train.ts, saved as a standard HF folder (config.json, model.safetensors, tokenizer files); plus a
// LoRA adapter with random (non-zero) factors and small test sets of canonical records for every structured task.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainBpe, writeTrainedTokenizer } from '../../src/tokenize/bpe-train.js';
import { initModel, saveModel } from '../../src/model/init.js';
import { loadModel } from '../../src/model/load.js';
import { applyLora, loraModules } from '../../src/adapt/apply.js';
import { saveAdapter } from '../../src/adapt/peft-io.js';
import { manualSeed, randn, scope } from '../../src/tensor/index.js';
import { renderTarget } from '../../src/data/tasks.js';
import type { GoldByTask, MedRecord } from '../../src/data/schema.js';
type StructuredTask = Exclude<keyof GoldByTask, 'qa'>;
import { sharedPath } from '../../src/util/paths.js';

/** The llama-tiny reference config (copied here for machines without ../shared; read from there when present). */
const LLAMA_TINY = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 256,
  hidden_size: 64,
  intermediate_size: 176,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  max_position_embeddings: 128,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  torch_dtype: 'float32',
  bos_token_id: 1,
  eos_token_id: 2,
};

function baseConfig(): Record<string, unknown> {
  const f = sharedPath('fixtures', 'reference', 'llama-tiny', 'config.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>) : { ...LLAMA_TINY };
}

/** Short records per task: enough to exercise every format; inputs are short so prompts stay small. */
export function taskRecords(): { [K in StructuredTask]: MedRecord<K>[] } & Record<string, MedRecord[]> {
  const r = <K extends StructuredTask>(task: K, id: string, input: string, gold: GoldByTask[K]): MedRecord<K> => ({
    id,
    task,
    input,
    gold,
  });
  return {
    'ddi-triplets': [
      r('ddi-triplets', 'd1', 'Aspirin may increase the anticoagulant activities of warfarin.', [
        { head: 'aspirin', relation: 'may increase the anticoagulant activities of', tail: 'warfarin' },
      ]),
      r('ddi-triplets', 'd2', 'No interaction was seen.', []),
      r('ddi-triplets', 'd3', 'Ketoconazole raises levels of simvastatin.', [
        { head: 'ketoconazole', relation: 'effect', tail: 'simvastatin' },
      ]),
    ],
    chemicals: [
      r('chemicals', 'c1', 'Cisplatin and lithium caused renal damage.', ['cisplatin', 'lithium']),
      r('chemicals', 'c2', 'Aspirin reduced fever.', ['Aspirin']),
      r('chemicals', 'c3', 'Nothing here.', []),
    ],
    diseases: [
      r('diseases', 's1', 'Cisplatin caused renal damage and nausea.', ['renal damage', 'nausea']),
      r('diseases', 's2', 'Fever was reduced.', ['Fever']),
    ],
    influences: [
      r('influences', 'i1', 'Lithium induced tremor.', [{ head: 'lithium', tail: 'tremor' }]),
      r('influences', 'i2', 'Aspirin reduced fever.', []),
    ],
    chemprot: [
      r('chemprot', 'p1', 'Imatinib inhibits ABL1.', [{ head: 'Imatinib', relation: 'CPR:4', tail: 'ABL1' }]),
      r('chemprot', 'p2', 'Dopamine activates D2R.', [{ head: 'Dopamine', relation: 'CPR:3', tail: 'D2R' }]),
    ],
    'drug-ae': [
      r('drug-ae', 'a1', 'Amiodarone caused pulmonary fibrosis.', [{ head: 'Amiodarone', tail: 'pulmonary fibrosis' }]),
      r('drug-ae', 'a2', 'The patient recovered.', []),
    ],
    'ade-email': [
      r('ade-email', 'e1', 'After starting Abilify I had nausea and vomiting.', {
        drug_name: 'Abilify',
        adverse_events: ['nausea', 'vomiting'],
      }),
      r('ade-email', 'e2', 'Lipitor gave me muscle pain.', { drug_name: 'Lipitor', adverse_events: ['muscle pain'] }),
    ],
  };
}

export interface TinyFixture {
  root: string;
  model: string;
  adapter: string;
}

let cached: TinyFixture | undefined;

/** Build (once per process) the model folder and adapter under a fresh temp folder. */
export function tinyFixture(): TinyFixture {
  if (cached) return cached;
  const root = mkdtempSync(join(tmpdir(), 'medlora-evalcli-'));
  process.on('exit', () => rmSync(root, { recursive: true, force: true }));
  const model = join(root, 'model');
  const adapter = join(root, 'run', 'adapter');
  const recs = Object.values(taskRecords()).flat() as MedRecord[];
  const texts = recs.flatMap((x) => [x.input, renderTarget(x)]);
  const bpe = trainBpe(texts, { vocabSize: 300, specialTokens: { bos: '<s>', eos: '</s>', pad: '<pad>' } });
  writeTrainedTokenizer(model, bpe, { addBos: true });
  // max_position_embeddings 1024: the Alpaca prompt alone is ~220 tokens of this small vocabulary, and generation stops
  // at the model's position limit (llama-tiny's 128 would cut every answer)
  const raw = {
    ...baseConfig(),
    vocab_size: bpe.vocab.size,
    max_position_embeddings: 1024,
    bos_token_id: bpe.vocab.get('<s>'),
    eos_token_id: bpe.vocab.get('</s>'),
    pad_token_id: bpe.vocab.get('<pad>'),
  };
  // a larger init std than HF's 0.02 gives peaked, varied random logits (a harder test for the constraint)
  const m = initModel(raw, { seed: 7, initializerRange: 0.5 });
  saveModel(m, raw, model);
  m.dispose();
  // an adapter with random A and B (a fresh LoRA has B = 0, which would equal the base model)
  const base = loadModel(model);
  applyLora(base, { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] });
  manualSeed(11);
  for (const [path, l] of loraModules(base)) {
    // setFactors copies (its copies must outlive any scope), so the random sources are made and freed here
    const A = scope(() => randn([4, l.inFeatures]).mul(0.5));
    const B = scope(() => randn([l.outFeatures, 4]).mul(0.5));
    l.setFactors(A, B, path);
    A.dispose();
    B.dispose();
  }
  saveAdapter(base, adapter, { base_model_name_or_path: model });
  base.dispose();
  cached = { root, model, adapter };
  return cached;
}

/** `medlora eval` of the fixture's model + adapter on `data`, outputs in `out` (the caller adds its settings). */
export function tunedEvalArgs(fx: TinyFixture, data: string, out: string): string[] {
  return ['eval', '--model', fx.model, '--adapter', fx.adapter, '--data', data, '--out', out];
}

/** `medlora extract` with the fixture's model + adapter for `task` (the caller adds the text or --input and settings). */
export function tunedExtractArgs(fx: TinyFixture, task: string): string[] {
  return ['extract', '--model', fx.model, '--adapter', fx.adapter, '--task', task];
}

/** A chemicals sentence the extract tests feed the tiny model. */
export const CHEM_SENTENCE = 'Cisplatin and lithium caused renal damage.';

/** Write records as JSONL into the fixture root. */
export function writeRecords(name: string, records: MedRecord[]): string {
  const f = join(tinyFixture().root, name);
  writeFileSync(f, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return f;
}

/** A plain chat template for the tiny tokenizer (it has none of its own): "role: content" lines, then "assistant:". */
export const TINY_CHAT_TEMPLATE =
  "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

const extraAdapters = new Map<string, string>();

/** A further random LoRA adapter over the tiny model (another seed, so its answers differ from fx.adapter's). */
export function tinyAdapter(name: string, seed: number): string {
  const have = extraAdapters.get(name);
  if (have) return have;
  const fx = tinyFixture();
  const dir = join(fx.root, name, 'adapter');
  const base = loadModel(fx.model);
  applyLora(base, { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['q_proj', 'v_proj'] });
  manualSeed(seed);
  for (const [path, l] of loraModules(base)) {
    const A = scope(() => randn([4, l.inFeatures]).mul(0.5));
    const B = scope(() => randn([l.outFeatures, 4]).mul(0.5));
    l.setFactors(A, B, path);
    A.dispose();
    B.dispose();
  }
  saveAdapter(base, dir, { base_model_name_or_path: fx.model });
  base.dispose();
  extraAdapters.set(name, dir);
  return dir;
}

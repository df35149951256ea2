// `medlora demo`: the whole product end to end on built-in data (glue over src/demo/run.ts).
import { bool, num, str, type CommandSpec } from '../command.js';
import { THREADS_OPTION } from '../threads.js';

export const demoCommand: CommandSpec = {
  name: 'demo',
  summary:
    'run the whole pipeline on built-in data: demo corpus, tokenizer, base model, LoRA fine-tune, base vs fine-tuned scores, report',
  details: [
    'With no arguments (and no network) the demo:',
    '  1. generates DrugBank-style interaction sentences (templates + real drug names) and splits them by drug pair;',
    '  2. trains a small byte-level BPE tokenizer and a small Llama, pretrained briefly as a language model (the base);',
    '  3. fine-tunes it with LoRA on ddi-triplets (the configs/ddi-llama31-8b.yaml preset with demo-sized flags);',
    '  4. scores base and fine-tuned models on the held-out split (precision / recall / F1 side by side);',
    '  5. extracts triplets from a few sentences and writes report.html.',
    'About 5-6 minutes on a 2-core CPU (one compute thread unless --threads or MEDLORA_NUM_THREADS is set). --model DIR runs steps 3-5 on your own Hugging Face checkpoint instead.',
  ].join('\n'),
  options: {
    out: {
      type: 'string',
      value: 'DIR',
      default: 'medlora-demo',
      description: 'run folder (replaced if it holds an earlier demo run)',
    },
    steps: {
      type: 'number',
      value: 'N',
      description:
        'LoRA fine-tune updates (default 1300; the base gets 6/13 as many, default 600); small values make a quick smoke run',
    },
    records: {
      type: 'number',
      value: 'N',
      description:
        'demo sentences to generate before the split (default 6000; above ~8000 the drug-pair grouping leaves a small held-out split)',
    },
    model: {
      type: 'string',
      value: 'DIR',
      description: 'fine-tune and evaluate this Hugging Face checkpoint instead of the built-in demo model',
    },
    seed: { type: 'number', value: 'N', default: 42, description: 'seed for data, initialisation and training' },
    threads: THREADS_OPTION,
    json: { type: 'boolean', description: 'machine-readable progress and results as JSON lines on stdout' },
    quiet: { type: 'boolean', description: 'no progress bars' },
    methods: {
      type: 'string',
      value: 'LIST',
      description:
        'compare fine-tuning methods (e.g. lora,dora,adapter_v2): one fine-tune each on the same base, data and budget; prints method, trainable parameters, P, R, F1, training time',
    },
  },
  async run(args) {
    const { runDemo } = await import('../../demo/run.js');
    const seed = num(args, 'seed')!;
    const { MedloraError } = await import('../../util/errors.js');
    if (!Number.isInteger(seed) || seed < 0) throw new MedloraError(`--seed must be a whole number >= 0, got ${seed}`);
    const steps = num(args, 'steps');
    const records = num(args, 'records');
    const model = str(args, 'model');
    const threads = num(args, 'threads');
    const methodList = str(args, 'methods');
    const methods =
      methodList !== undefined ? (await import('../../demo/compare.js')).parseMethods(methodList) : undefined;
    await runDemo({
      out: str(args, 'out')!,
      seed,
      json: bool(args, 'json'),
      quiet: bool(args, 'quiet'),
      ...(steps !== undefined ? { steps } : {}),
      ...(records !== undefined ? { records } : {}),
      ...(model !== undefined ? { model } : {}),
      ...(methods ? { methods } : {}),
      ...(threads !== undefined ? { threads } : {}),
    });
    return 0;
  },
};

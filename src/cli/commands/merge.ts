// `medlora merge`: fold an adapter (any fine-tuning method, via src/adapt/methods) into its base model and write a
// standard Hugging Face checkpoint.
import { type CommandSpec, bool, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { THREADS_OPTION } from '../threads.js';

export const mergeCommand: CommandSpec = {
  name: 'merge',
  summary:
    'Merge an adapter (LoRA, DoRA, Adapter-V2 bias/scale) into its base model and write a standard Hugging Face checkpoint',
  details: [
    'LoRA: every adapted weight becomes W + B A * lora_alpha / r (alpha / sqrt(r) with use_rslora); DoRA: m / ||W + s B A|| * (W + s B A)',
    'per output row (PEFT merge_and_unload); Adapter-V2: bias and scale fold into the layers, a prefix cannot be merged (an error says so).',
    'Computed in float32 and',
    "stored in the weight's dtype (or --dtype); all other tensors are copied under their original names. config.json and",
    'the tokenizer files are copied; checkpoints over 5 GB are sharded with model.safetensors.index.json.',
  ].join('\n'),
  options: {
    model: {
      type: 'string',
      value: 'DIR',
      required: true,
      description: 'base model folder (config.json + *.safetensors)',
    },
    adapter: {
      type: 'string',
      value: 'DIR',
      required: true,
      description: 'adapter folder (adapter_config.json + adapter_model.safetensors)',
    },
    out: { type: 'string', value: 'DIR', required: true, description: 'output folder for the merged checkpoint' },
    dtype: {
      type: 'string',
      value: 'f32|bf16|f16',
      description: 'cast floating-point weights to this dtype (default: keep)',
    },
    threads: THREADS_OPTION,
    json: { type: 'boolean', description: 'print progress and the result as JSON lines' },
  },
  async run(args) {
    const dtype = str(args, 'dtype');
    if (dtype !== undefined && dtype !== 'f32' && dtype !== 'bf16' && dtype !== 'f16') {
      throw new MedloraError(`medlora merge: --dtype must be f32, bf16 or f16, got "${dtype}"`);
    }
    const json = bool(args, 'json');
    const { mergeAnyCheckpoint } = await import('../../adapt/methods/index.js');
    const { Progress } = await import('../../util/progress.js');
    let bar: InstanceType<typeof Progress> | undefined;
    const r = mergeAnyCheckpoint({
      model: str(args, 'model')!,
      adapter: str(args, 'adapter')!,
      out: str(args, 'out')!,
      dtype,
      onTensor: (done, total) => {
        (bar ??= new Progress({ total, label: 'merge', unit: 'tensor', json })).update(done);
      },
    });
    bar?.end();
    if (json) {
      console.log(
        JSON.stringify({
          event: 'done',
          method: r.method,
          out: str(args, 'out'),
          merged_modules: r.merged,
          tensors: r.tensors,
          files: r.files,
          copied: r.copied,
          untied: r.untied ?? null,
        }),
      );
    } else {
      console.log(
        `merged ${r.merged.length} ${r.method} module(s) into ${r.tensors} tensors -> ${str(args, 'out')} (${r.files.join(', ')})`,
      );
      if (r.untied)
        console.log(
          `note: the adapter targets the tied output layer; wrote a separate ${r.untied} and set tie_word_embeddings=false`,
        );
      if (r.copied.length) console.log(`copied ${r.copied.join(', ')}`);
    }
    return 0;
  },
};

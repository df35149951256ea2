// `medlora init`: a random-weight Hugging Face checkpoint of a named architecture with a given tokenizer (glue over
// src/model/random-checkpoint.ts), for starting without the demo, tests and benchmarks.
import { type CommandSpec, bool, num, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { ARCHITECTURES } from '../../model/presets.js';

export const initCommand: CommandSpec = {
  name: 'init',
  summary:
    'write a random-weight checkpoint of a named architecture with a given tokenizer (config.json, model.safetensors, tokenizer files)',
  details: [
    'Architectures (--like):',
    ...Object.entries(ARCHITECTURES).map(([k, a]) => `  ${k.padEnd(14)}${a.about}`),
    'vocab_size and the BOS / EOS / pad ids come from the tokenizer; its files are copied into --out. The weights follow',
    "transformers' initialisation (normal(0, initializer_range), norms 1, biases 0), seeded by --seed.",
    'A tokenizer folder: any Hugging Face model folder with tokenizer.json (or vocab.json + merges.txt), e.g.',
    '../shared/fixtures/hf/SmolLM2-135M-Instruct; the reference checkpoints in ../shared/fixtures/reference have none.',
  ].join('\n'),
  examples: [
    'medlora init --like llama-tiny --tokenizer ../shared/fixtures/hf/SmolLM2-135M-Instruct --out tiny-llama-2 --seed 7',
  ],
  options: {
    like: {
      type: 'string',
      value: 'NAME',
      required: true,
      description: `architecture and size: ${Object.keys(ARCHITECTURES).join(', ')}`,
    },
    tokenizer: {
      type: 'string',
      value: 'DIR',
      required: true,
      description: 'folder with the tokenizer files (copied; sets vocab_size)',
    },
    out: {
      type: 'string',
      value: 'DIR',
      required: true,
      description: 'new checkpoint folder (must be empty or absent)',
    },
    seed: { type: 'number', value: 'N', default: 0, description: 'seed of the random weights' },
    dtype: { type: 'string', value: 'f32|bf16', default: 'f32', description: 'dtype of the stored weights' },
    layers: { type: 'number', value: 'N', description: "decoder layers (default: the named architecture's)" },
    json: { type: 'boolean', description: 'print the result as one JSON object' },
  },
  async run(args) {
    const dtype = str(args, 'dtype')!;
    if (dtype !== 'f32' && dtype !== 'bf16') throw new MedloraError(`--dtype must be f32 or bf16, got "${dtype}"`);
    const seed = num(args, 'seed')!;
    if (!Number.isInteger(seed) || seed < 0) throw new MedloraError(`--seed must be a whole number >= 0, got ${seed}`);
    const layers = num(args, 'layers');
    const { writeRandomCheckpoint } = await import('../../model/random-checkpoint.js');
    const r = writeRandomCheckpoint({
      like: str(args, 'like')!,
      tokenizer: str(args, 'tokenizer')!,
      out: str(args, 'out')!,
      seed,
      dtype,
      ...(layers !== undefined ? { layers } : {}),
    });
    if (bool(args, 'json')) {
      console.log(
        JSON.stringify({
          out: r.out,
          like: str(args, 'like'),
          parameters: r.parameters,
          vocab_size: r.config.vocab_size,
          dtype,
          copied: r.copied,
        }),
      );
    } else {
      console.log(
        `wrote ${r.out}: ${str(args, 'like')} with random weights (${r.parameters.toLocaleString('en-US')} parameters, ${dtype}, ` +
          `vocab ${String(r.config.vocab_size)}); tokenizer files: ${r.copied.join(', ')}`,
      );
    }
    return 0;
  },
};

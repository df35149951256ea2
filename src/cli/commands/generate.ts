// `medlora generate`: a quick look at what a model (+ optional LoRA adapter) writes for a prompt: greedy by default,
// seeded sampling with --temperature, optional chat template, stop strings, --json for machines.
import type { CommandSpec } from '../command.js';
import { bool, list, num, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { THREADS_OPTION } from '../threads.js';
import { DEVICE_OPTION, deviceFromFlag } from '../device.js';

export const generateCommand: CommandSpec = {
  name: 'generate',
  summary: 'Generate text from a prompt with a model (and optional LoRA adapter)',
  options: {
    model: {
      type: 'string',
      value: 'DIR',
      required: true,
      description: 'Hugging Face model folder (config.json + safetensors)',
    },
    adapter: { type: 'string', value: 'DIR', description: 'PEFT LoRA adapter folder to apply' },
    prompt: { type: 'string', value: 'TEXT', multiple: true, description: 'prompt text (repeat for a batch)' },
    ids: {
      type: 'string',
      value: 'ID,ID,...',
      multiple: true,
      description: 'a prompt given as token ids (for models without a tokenizer); prints ids',
    },
    tokenizer: { type: 'string', value: 'DIR', description: 'tokenizer folder (default: --model)' },
    chat: { type: 'boolean', description: 'wrap each prompt as a user message with the chat template' },
    'max-new-tokens': { type: 'number', value: 'N', description: 'tokens to generate at most', default: 128 },
    temperature: { type: 'number', value: 'T', description: 'sampling temperature; 0 = greedy', default: 0 },
    'top-k': { type: 'number', value: 'K', description: 'sample among the K most likely tokens (0 = off)' },
    'top-p': {
      type: 'number',
      value: 'P',
      description: 'sample among the most likely tokens holding mass P (1 = off)',
    },
    seed: { type: 'number', value: 'N', description: 'seed of the sampling PRNG', default: 0 },
    'repetition-penalty': {
      type: 'number',
      value: 'R',
      description: 'HF repetition penalty (> 1 discourages repeats; the NER recipe uses 1.15)',
    },
    stop: {
      type: 'string',
      value: 'TEXT',
      multiple: true,
      description: 'stop a sequence when it writes this text (repeatable)',
    },
    dtype: { type: 'string', value: 'f32|bf16', description: "compute dtype (default: the checkpoint's)" },
    device: DEVICE_OPTION,
    threads: THREADS_OPTION,
    json: {
      type: 'boolean',
      description: 'print one JSON object per prompt: prompt, text, ids, finish_reason, truncated',
    },
  },
  async run(args) {
    const prompts = list(args, 'prompt');
    const idPrompts = list(args, 'ids').map(parseIds);
    if (prompts.length === 0 && idPrompts.length === 0)
      throw new MedloraError('medlora generate: give --prompt TEXT (or --ids 1,2,3)');
    if (prompts.length && idPrompts.length)
      throw new MedloraError('medlora generate: use either --prompt or --ids, not both');
    const dtype = str(args, 'dtype');
    if (dtype !== undefined && dtype !== 'f32' && dtype !== 'bf16')
      throw new MedloraError(`medlora generate: --dtype must be f32 or bf16, got "${dtype}"`);
    const device = await deviceFromFlag(args);
    const { loadModel } = await import('../../model/load.js');
    const { generate, generateIds } = await import('../../generate/generate.js');
    const modelDir = str(args, 'model')!;
    const model = loadModel(modelDir, { ...(dtype ? { dtype } : {}), device });
    try {
      if (str(args, 'adapter')) {
        const { loadAnyAdapter } = await import('../../adapt/methods/index.js');
        loadAnyAdapter(model, str(args, 'adapter')!);
      }
      const opts = {
        maxNewTokens: num(args, 'max-new-tokens')!,
        temperature: num(args, 'temperature'),
        topK: num(args, 'top-k'),
        topP: num(args, 'top-p'),
        seed: num(args, 'seed'),
        repetitionPenalty: num(args, 'repetition-penalty'),
        stopStrings: list(args, 'stop'),
      };
      if (idPrompts.length) {
        if (opts.stopStrings.length)
          throw new MedloraError('medlora generate: --stop needs text prompts (a tokenizer)');
        const res = generateIds(model, idPrompts, opts);
        res.forEach((r, i) => {
          if (bool(args, 'json'))
            console.log(
              JSON.stringify({
                prompt_ids: idPrompts[i],
                ids: r.ids,
                finish_reason: r.finishReason,
                truncated: r.truncated,
              }),
            );
          else
            console.log(
              `${r.ids.join(' ')}\n(${r.ids.length} tokens, ${r.finishReason}${r.finishReason === 'max_positions' ? ": TRUNCATED at the model's max_position_embeddings" : ''})`,
            );
        });
        return 0;
      }
      const { loadTokenizer } = await import('../../tokenize/tokenizer.js');
      const tok = loadTokenizer(str(args, 'tokenizer') ?? modelDir);
      if (tok.vocabSize > model.config.vocab_size) {
        throw new MedloraError(
          `tokenizer has ${tok.vocabSize} ids but the model's vocab_size is ${model.config.vocab_size} (wrong --tokenizer?)`,
        );
      }
      const texts = bool(args, 'chat')
        ? prompts.map((p) => tok.applyChatTemplate([{ role: 'user', content: p }], { addGenerationPrompt: true }))
        : prompts;
      // a chat template already writes BOS as text: encode without adding it twice
      const res = generate(model, tok, texts, { ...opts, addSpecialTokens: !bool(args, 'chat') });
      res.forEach((r, i) => {
        if (bool(args, 'json'))
          console.log(
            JSON.stringify({
              prompt: prompts[i],
              text: r.text,
              ids: r.ids,
              finish_reason: r.finishReason,
              truncated: r.truncated,
            }),
          );
        else
          console.log(
            `${prompts[i]}${r.text}\n(${r.ids.length} tokens, ${r.finishReason}${r.finishReason === 'max_positions' ? ": TRUNCATED at the model's max_position_embeddings" : ''})`,
          );
      });
      return 0;
    } finally {
      model.dispose();
    }
  },
};

function parseIds(s: string): number[] {
  const ids = s
    .split(/[\s,]+/)
    .filter(Boolean)
    .map(Number);
  if (ids.length === 0 || ids.some((x) => !Number.isInteger(x) || x < 0))
    throw new MedloraError(`medlora generate: --ids expects comma-separated token ids, got "${s}"`);
  return ids;
}

// A random-weight Hugging Face checkpoint of a named architecture (src/model/presets.ts) with a given tokenizer:
// config.json (vocab_size and special ids from the tokenizer), model.safetensors (HF initialisation, seeded) and the
// tokenizer's files copied. What `medlora init` writes, so a newcomer, a test or a benchmark can start without the demo.
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../tokenize/tokenizer.js';
import { MedloraError } from '../util/errors.js';
import { keep, noGrad, scope } from '../tensor/index.js';
import { declaredParameters } from './layers.js';
import { initModel, saveModel } from './init.js';
import { ARCHITECTURES } from './presets.js';

/** Tokenizer files copied when present (those loadTokenizer reads; generation_config.json is the model's, not copied). */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
];

export interface RandomCheckpointOptions {
  /** a name of ARCHITECTURES */
  like: string;
  /** folder with the tokenizer files */
  tokenizer: string;
  out: string;
  seed?: number;
  dtype?: 'f32' | 'bf16';
  /** fewer (or more) decoder layers than the named shape */
  layers?: number;
}

export function writeRandomCheckpoint(o: RandomCheckpointOptions): {
  out: string;
  config: Record<string, unknown>;
  parameters: number;
  copied: string[];
} {
  const preset = ARCHITECTURES[o.like];
  if (!preset)
    throw new MedloraError(
      `architecture "${o.like}" is not known; choose one of ${Object.keys(ARCHITECTURES).join(', ')}`,
    );
  if (existsSync(o.out) && readdirSync(o.out).length > 0)
    throw new MedloraError(`${o.out} is not empty (choose a new folder)`);
  const tok = loadTokenizer(o.tokenizer);
  const config: Record<string, unknown> = { ...structuredClone(preset.config), vocab_size: tok.vocabSize };
  if (tok.bosId !== undefined) config.bos_token_id = tok.bosId;
  if (tok.eosId !== undefined) config.eos_token_id = tok.eosId;
  if (tok.padId !== undefined) config.pad_token_id = tok.padId;
  if (o.layers !== undefined) {
    if (!Number.isInteger(o.layers) || o.layers < 1)
      throw new MedloraError(`layers must be a positive integer, got ${o.layers}`);
    config[config.model_type === 'gpt2' ? 'n_layer' : 'num_hidden_layers'] = o.layers;
  }
  const model = initModel(config, { seed: o.seed ?? 0 });
  try {
    let parameters = 0;
    noGrad(() => {
      for (const [, { module, name, shape }] of declaredParameters(model)) {
        parameters += shape.reduce((a, b) => a * b, 1);
        if (o.dtype === 'bf16') {
          const t = module.ownParameters().find(([n]) => n === name)![1];
          module.setParam(
            name,
            scope(() => keep(t.to('bf16'))),
          );
        }
      }
    });
    mkdirSync(o.out, { recursive: true });
    saveModel(model, config, o.out);
    const copied = TOKENIZER_FILES.filter((f) => existsSync(join(o.tokenizer, f)));
    for (const f of copied) copyFileSync(join(o.tokenizer, f), join(o.out, f));
    return { out: o.out, config, parameters, copied };
  } finally {
    model.dispose();
  }
}

// A fresh model from a config.json object (random weights, HF's initialisation) and saving any model as a standard
// Hugging Face folder (config.json + model.safetensors) that loadModel, transformers and PEFT read back.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keep, manualSeed, noGrad, ones, randn, scope, zeros, type Tensor } from '../tensor/index.js';
import { parseModelConfig } from '../io/config.js';
import { writeSafetensors, type TensorData } from '../io/safetensors.js';
import { tensorData } from '../io/tensor-bytes.js';
import { MedloraError } from '../util/errors.js';
import { declaredParameters } from './layers.js';
import { buildModel, type LoadedModel } from './registry.js';

export interface InitOptions {
  /** engine seed for the random weights */
  seed: number;
  /** std of the normal init of linear and embedding weights (HF PretrainedConfig.initializer_range default 0.02) */
  initializerRange?: number;
}

/**
 * Build the architecture of a raw config.json object and fill every declared parameter as transformers'
 * `_init_weights` does for Llama-family models: Linear / Embedding weights ~ N(0, initializer_range), biases 0,
 * norm weights 1 (and norm biases 0). Parameters are frozen (requiresGrad false), like a loaded checkpoint.
 */
export function initModel(rawConfig: Record<string, unknown>, o: InitOptions): LoadedModel {
  const { config } = parseModelConfig(rawConfig, 'config (medlora init)');
  const std =
    o.initializerRange ?? (typeof rawConfig.initializer_range === 'number' ? rawConfig.initializer_range : 0.02);
  if (!(std > 0)) throw new MedloraError(`init: initializer_range must be > 0, got ${std}`);
  const model = buildModel(config);
  manualSeed(o.seed);
  noGrad(() => {
    for (const [key, { module, name, shape }] of declaredParameters(model)) {
      const isNorm = /(norm|ln_\w+)$/.test(key.replace(/\.(weight|bias)$/, ''));
      const t: Tensor = scope(() =>
        keep(name === 'bias' ? zeros(shape) : isNorm ? ones(shape) : randn(shape).mul(std)),
      );
      module.setParam(name, t);
    }
  });
  return model;
}

/** Every unique parameter of a model as safetensors data keyed by its HF name (a tied head is not written). */
export function modelTensors(model: LoadedModel): Record<string, TensorData> {
  const out: Record<string, TensorData> = {};
  for (const [key, { module, name }] of declaredParameters(model)) {
    const t = module.ownParameters().find(([n]) => n === name)?.[1];
    if (!t) throw new MedloraError(`save model: parameter ${key} is missing`);
    out[key] = tensorData(t);
  }
  return out;
}

/**
 * Write `dir/config.json` (the raw config, with torch_dtype set from the weights) and `dir/model.safetensors`.
 * The model must hold plain weights (merge or unload LoRA adapters first).
 */
export function saveModel(
  model: LoadedModel,
  rawConfig: Record<string, unknown>,
  dir: string,
): { config: string; weights: string } {
  const tensors = modelTensors(model);
  const first = Object.values(tensors)[0];
  if (!first) throw new MedloraError('save model: the model has no parameters');
  const torchDtype = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' }[first.dtype as string] ?? 'float32';
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'config.json');
  const weights = join(dir, 'model.safetensors');
  writeSafetensors(weights, tensors, { format: 'pt' });
  writeFileSync(config, `${JSON.stringify({ ...rawConfig, torch_dtype: torchDtype }, null, 2)}\n`);
  return { config, weights };
}

// Saving and loading PEFT-format LoRA adapters on a live model: adapter_config.json + adapter_model.safetensors with
// keys base_model.model.<module path>.lora_A.weight / lora_B.weight, so a Python PEFT user can load what medlora
// trains (PeftModel.from_pretrained) and medlora can load what PEFT trained.
import { join } from 'node:path';
import { fromBytes, scope, type Tensor } from '../tensor/index.js';
import {
  ADAPTER_WEIGHTS,
  type Adapter,
  loraKey,
  makeLoraConfig,
  readAdapter,
  writeAdapter,
  type LoraConfig,
} from '../io/peft.js';
import type { TensorData } from '../io/safetensors.js';
import { engineDType, tensorData } from '../io/tensor-bytes.js';
import type { Module } from '../model/module.js';
import { MedloraError } from '../util/errors.js';
import { applyLora, loraModules, resolve } from './apply.js';
import { unloadLora } from './merge.js';

/**
 * The LoRA settings a model's adapters were created with, as an adapter config. Every wrapper must share r, alpha,
 * scaling and dropout (per-module ranks are PEFT's rank_pattern, which medlora does not write).
 */
export function loraConfigOf(model: Module, base: Partial<LoraConfig> = {}): LoraConfig {
  const mods = loraModules(model);
  if (mods.length === 0) throw new MedloraError('save adapter: the model has no LoRA adapters');
  const [, first] = mods[0]!;
  for (const [p, l] of mods) {
    if (
      l.r !== first.r ||
      l.loraAlpha !== first.loraAlpha ||
      l.useRslora !== first.useRslora ||
      l.dropoutP !== first.dropoutP
    ) {
      throw new MedloraError(
        `save adapter: '${p}' has r=${l.r}, alpha=${l.loraAlpha} but '${mods[0]![0]}' has r=${first.r}, alpha=${first.loraAlpha}; mixed settings are not supported`,
      );
    }
  }
  const fanInFanOut = mods.some(([, l]) => l.fanInFanOut);
  const names = [...new Set(mods.map(([p]) => p.split('.').pop()!))].sort();
  return makeLoraConfig({
    ...base,
    r: first.r,
    lora_alpha: first.loraAlpha,
    lora_dropout: first.dropoutP,
    use_rslora: first.useRslora,
    target_modules: base.target_modules ?? names,
    fan_in_fan_out: fanInFanOut,
  });
}

/**
 * Write the model's LoRA factors (F32) and config to `dir`. `config` overrides what is derived from the model
 * (e.g. base_model_name_or_path, or the original target_modules regex); r / alpha always come from the model.
 * Returns the config written.
 */
export function saveAdapter(model: Module, dir: string, config: Partial<LoraConfig> = {}): LoraConfig {
  const c = loraConfigOf(model, config);
  const tensors: Record<string, TensorData> = {};
  for (const [path, l] of loraModules(model)) {
    tensors[loraKey(path, 'A')] = tensorData(l.lora_A.weight.detach());
    tensors[loraKey(path, 'B')] = tensorData(l.lora_B.weight.detach());
  }
  writeAdapter(dir, c, tensors);
  return c;
}

export interface LoadedAdapter {
  config: LoraConfig;
  /** wrapped module paths */
  modules: string[];
}

/**
 * Apply LoRA to `model` as the adapter folder's config says and copy its A / B tensors in. The modules the config
 * targets in this model must be exactly the modules the weights file holds; shapes are checked per key.
 */
export function loadAdapter(model: Module, dir: string): LoadedAdapter {
  const ad = readAdapter(dir);
  const file = join(dir, ADAPTER_WEIGHTS);
  if (ad.config.bias !== 'none')
    throw new MedloraError(
      `${join(dir, 'adapter_config.json')}: bias=${JSON.stringify(ad.config.bias)} is not supported (only "none")`,
    );
  const wrapped = applyLora(model, { ...ad.config, init: true });
  try {
    checkBaseCopies(ad, file, (path) => {
      const dot = path.lastIndexOf('.');
      const m = resolve(model, path.slice(0, dot));
      const t = m ? (m as unknown as Record<string, unknown>)[path.slice(dot + 1)] : undefined;
      return t && typeof t === 'object' && 'shape' in t ? (t as Tensor) : undefined;
    });
    copyFactors(model, ad, wrapped, file);
  } catch (e) {
    unloadLora(model); // leave the model as it was
    throw e;
  }
  return { config: ad.config, modules: wrapped };
}

/**
 * The base-weight copies some PEFT adapters carry beside the factors. With save_embedding_layers="auto" (the default)
 * PEFT's get_peft_model_state_dict also saves the weights of the input/output embedding layers when one is targeted:
 * for a LoRA on lm_head that is `base_model.model.lm_head.base_layer.weight`, the head's frozen base weight. On load
 * (set_peft_model_state_dict + load_state_dict(strict=False)) PEFT copies such a tensor OVER the model's weight, i.e.
 * PEFT uses the stored copy. medlora instead requires the copy to equal the model's weight (after casting it to the
 * weight's dtype: max |diff| <= 1e-6 x max|w| for f32, 1e-2 x max|w| for 16-bit weights): then both agree exactly,
 * and a copy that differs (another base, a resized vocabulary) is an error naming the tensor rather than a silent
 * replacement of the model's weights. `lookup` returns the model tensor at a parameter path (e.g. lm_head.base_layer.weight).
 */
export function checkBaseCopies(ad: Adapter, file: string, lookup: (path: string) => Tensor | undefined): void {
  for (const name of ad.otherTensors) {
    const m = /^base_model\.model\.(.+)$/.exec(name);
    const path = m?.[1];
    const target = path ? lookup(path) : undefined;
    if (!path || !target) {
      throw new MedloraError(
        `${file}: tensor '${name}' is neither a LoRA factor nor a copy of a weight of this model (medlora loads only LoRA factors and base-weight copies)`,
      );
    }
    const info = ad.tensors.info(name);
    if (info.shape.length !== target.shape.length || info.shape.some((d, i) => d !== target.shape[i])) {
      throw new MedloraError(
        `${file}: '${name}' has shape [${info.shape.join(', ')}] but the model's '${path}' is [${target.shape.join(', ')}] (adapter saved for another base model or a resized vocabulary?)`,
      );
    }
    const { diff, maxAbs } = scope(() => {
      const stored = fromBytes(ad.tensors.read(name), engineDType(info.dtype, `${file}: '${name}'`), info.shape)
        .to(target.dtype)
        .to('f32');
      const w = target.to({ dtype: 'f32', device: 'cpu' });
      return { diff: stored.sub(w).abs().max().item() as number, maxAbs: w.abs().max().item() as number };
    });
    const tol = (target.dtype === 'f32' || target.dtype === 'f64' ? 1e-6 : 1e-2) * Math.max(maxAbs, 1e-30);
    if (!(diff <= tol)) {
      throw new MedloraError(
        `${file}: '${name}' (the base weight PEFT saved beside the LoRA factors) differs from the model's '${path}' by up to ${diff.toExponential(3)}; PEFT would replace the model's weight with it, medlora refuses: load the base model the adapter was trained on`,
      );
    }
  }
}

function copyFactors(model: Module, ad: Adapter, wrapped: string[], file: string): void {
  const inFile = new Set(ad.modules.keys());
  const missing = wrapped.filter((p) => !inFile.has(p));
  const extra = [...inFile].filter((p) => !wrapped.includes(p));
  if (missing.length || extra.length) {
    throw new MedloraError(
      `${file}: does not fit this model:` +
        (missing.length
          ? ` no weights for targeted module(s) ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ', ...' : ''};`
          : '') +
        (extra.length
          ? ` weights for module(s) ${extra.slice(0, 4).join(', ')}${extra.length > 4 ? ', ...' : ''} that are not targeted linear layers of this model;`
          : '') +
        (['layers_to_transform', 'layers_pattern', 'exclude_modules'].some(
          (k) => (ad.config as unknown as Record<string, unknown>)[k] != null,
        )
          ? ` (the selection follows target_modules, layers_to_transform, layers_pattern and exclude_modules of ${join(ad.dir, 'adapter_config.json')}: do they match the file?)`
          : ' (was it trained for a different architecture?)'),
    );
  }
  const byPath = new Map(loraModules(model));
  for (const [path, info] of ad.modules) {
    const l = byPath.get(path)!;
    const load = (which: 'A' | 'B'): Tensor => {
      const ti = which === 'A' ? info.A : info.B;
      return fromBytes(ad.tensors.read(ti.name), engineDType(ti.dtype, `${file}: '${ti.name}'`), ti.shape);
    };
    const A = load('A'),
      B = load('B');
    try {
      l.setFactors(A, B, `${file}: '${loraKey(path, 'A').replace(/\.lora_A\.weight$/, '')}'`);
    } finally {
      A.dispose();
      B.dispose();
    }
  }
}

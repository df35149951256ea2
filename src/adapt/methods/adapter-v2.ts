// Fine-tuning method "adapter_v2": LLaMA-Adapter V2 (litgpt semantics; wrappers in ../adapter-v2.ts). File format
// (issue 13): adapter_config.json {"peft_type": "ADAPTER_V2", "task_type": "CAUSAL_LM", "adapter_prompt_length",
// "adapter_start_layer", "target_modules", "base_model_name_or_path"} and adapter_model.safetensors with keys
// base_model.model.<HF module path>.{adapter_bias, adapter_scale, adapter_wte.weight, gating_factor} and the trained
// norm weights whole (base_model.model.model.norm.weight, ...), which replace the base's.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromBytes, isFloatDType, noGrad, scope, type Tensor } from '../../tensor/index.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, isTargetModule } from '../../io/peft.js';
import { SafetensorsFile, writeFileAtomic, writeSafetensors, type TensorData } from '../../io/safetensors.js';
import { isLinearLike, type Module } from '../../model/module.js';
import { LayerNorm, RMSNorm } from '../../model/layers.js';
import { isExtensibleAttention } from '../../model/decoder.js';
import { MedloraError } from '../../util/errors.js';
import { linearModulePaths, resolve } from '../apply.js';
import { AdapterV2Attention, AdapterV2Linear } from '../adapter-v2.js';
import { engineDType, tensorData } from '../../io/tensor-bytes.js';
import { mergeInMemory } from './merged-checkpoint.js';
import type { FinetuningMethod, SaveInfo } from './types.js';

export interface AdapterV2Settings {
  /** prefix rows per adapted layer (litgpt default 10) */
  adapter_prompt_length: number;
  /** first layer index with a prefix (litgpt default 2) */
  adapter_start_layer: number;
  /** linear layers that get adapter_bias / adapter_scale: "all" (every linear layer, lm_head included), names, or a regex */
  target_modules: string[] | string;
}

const PREFIX = 'base_model.model.';

function parentOf(model: Module, path: string): [Module, string] {
  const dot = path.lastIndexOf('.');
  return [resolve(model, dot < 0 ? '' : path.slice(0, dot))!, path.slice(dot + 1)];
}

export function adapterV2Linears(model: Module): Array<[string, AdapterV2Linear]> {
  return [...model.namedModules()]
    .filter(([, m]) => m instanceof AdapterV2Linear)
    .map(([p, m]) => [p, m as AdapterV2Linear]);
}
export function adapterV2Attentions(model: Module): Array<[string, AdapterV2Attention]> {
  return [...model.namedModules()]
    .filter(([, m]) => m instanceof AdapterV2Attention)
    .map(([p, m]) => [p, m as AdapterV2Attention]);
}
/** Every RMSNorm / LayerNorm (decoder layers and the final norm): their weights (and biases) train. */
function norms(model: Module): Array<[string, Module]> {
  return [...model.namedModules()]
    .filter(([, m]) => m instanceof RMSNorm || m instanceof LayerNorm)
    .map(([p, m]) => [p, m]);
}

function checkSettings(s: AdapterV2Settings, where: string): void {
  if (!Number.isInteger(s.adapter_prompt_length) || s.adapter_prompt_length < 1)
    throw new MedloraError(
      `${where}: adapter_prompt_length must be a positive integer, got ${JSON.stringify(s.adapter_prompt_length)}`,
    );
  if (!Number.isInteger(s.adapter_start_layer) || s.adapter_start_layer < 0)
    throw new MedloraError(
      `${where}: adapter_start_layer must be an integer >= 0, got ${JSON.stringify(s.adapter_start_layer)}`,
    );
  const tm = s.target_modules;
  if (!(typeof tm === 'string' || (Array.isArray(tm) && tm.length > 0 && tm.every((x) => typeof x === 'string')))) {
    throw new MedloraError(
      `${where}: target_modules must be "all", a non-empty list of module names or a regex string, got ${JSON.stringify(tm)}`,
    );
  }
}

function targeted(model: Module, tm: string[] | string): string[] {
  const candidates = linearModulePaths(model);
  if (tm === 'all') return candidates;
  const out = candidates.filter((p) => isTargetModule({ target_modules: tm }, p));
  if (Array.isArray(tm)) {
    const unmatched = tm.filter((t) => !candidates.some((p) => p === t || p.endsWith(`.${t}`)));
    if (unmatched.length)
      throw new MedloraError(
        `Adapter-V2 target_modules ${JSON.stringify(unmatched)} match no linear layer (linear layers in this model: ${[...new Set(candidates.map((p) => p.split('.').pop()!))].join(', ')})`,
      );
  } else if (out.length === 0)
    throw new MedloraError(`Adapter-V2 target_modules ${JSON.stringify(tm)} matches no linear layer`);
  return out;
}

/** Add fresh Adapter-V2 parameters (exact no-op at init); freeze everything else except the norms. Returns adapted paths. */
function apply(model: Module, s: AdapterV2Settings): string[] {
  checkSettings(s, 'Adapter-V2');
  if (adapterV2Linears(model).length || adapterV2Attentions(model).length)
    throw new MedloraError('Adapter-V2: the model already has Adapter-V2 parameters');
  const paths = targeted(model, s.target_modules);
  for (const [, t] of model.namedParameters()) if (t.requiresGrad) t.requiresGrad_(false);
  for (const path of paths) {
    const [parent, name] = parentOf(model, path);
    parent.setChild(name, new AdapterV2Linear(parent.child(name) as never));
  }
  // attention modules in model order: the i-th is layer i
  const attns = [...model.namedModules()].filter(([, m]) => isExtensibleAttention(m));
  const prefixed: string[] = [];
  attns.forEach(([path, m], i) => {
    if (i < s.adapter_start_layer) return;
    const hidden = m
      .namedChildren()
      .map(([, c]) => c)
      .find(isLinearLike)?.inFeatures;
    if (hidden === undefined) throw new MedloraError(`Adapter-V2: attention module '${path}' has no linear projection`);
    const [parent, name] = parentOf(model, path);
    parent.setChild(name, new AdapterV2Attention(m as never, s.adapter_prompt_length, hidden));
    prefixed.push(path);
  });
  for (const [, n] of norms(model))
    for (const [, t] of n.ownParameters()) if (isFloatDType(t.dtype)) t.requiresGrad_(true);
  return [...paths, ...prefixed];
}

/** Every tensor an Adapter-V2 adapter file holds for this model: key -> the live tensor. */
function adapterTensors(model: Module): Map<string, { tensor: Tensor; set: (t: Tensor) => void }> {
  const out = new Map<string, { tensor: Tensor; set: (t: Tensor) => void }>();
  for (const [p, l] of adapterV2Linears(model)) {
    out.set(`${PREFIX}${p}.adapter_bias`, {
      tensor: l.adapter_bias,
      set: (t) => l.setVector('adapter_bias', t, `${p}.adapter_bias`),
    });
    out.set(`${PREFIX}${p}.adapter_scale`, {
      tensor: l.adapter_scale,
      set: (t) => l.setVector('adapter_scale', t, `${p}.adapter_scale`),
    });
  }
  for (const [p, a] of adapterV2Attentions(model)) {
    out.set(`${PREFIX}${p}.adapter_wte.weight`, {
      tensor: a.adapter_wte.weight,
      set: (t) => a.adapter_wte.setParam('weight', leaf(t, a.adapter_wte.weight)),
    });
    out.set(`${PREFIX}${p}.gating_factor`, {
      tensor: a.gating_factor,
      set: (t) => a.setParam('gating_factor', leaf(t, a.gating_factor)),
    });
  }
  for (const [p, n] of norms(model)) {
    for (const [k, t] of n.ownParameters())
      out.set(`${PREFIX}${p}.${k}`, { tensor: t, set: (v) => n.setParam(k, leaf(v, t)) });
  }
  return out;
}

/** A trainable copy of `t` with `like`'s dtype and device. */
function leaf(t: Tensor, like: Tensor): Tensor {
  return noGrad(() => t.detach().to({ dtype: like.dtype, device: like.device }).clone()).requiresGrad_(true);
}

function save(model: Module, dir: string, info: SaveInfo = {}): Record<string, unknown> {
  const lin = adapterV2Linears(model),
    att = adapterV2Attentions(model);
  if (!lin.length && !att.length)
    throw new MedloraError('save adapter (adapter_v2): the model has no Adapter-V2 parameters');
  const attnPaths = [...model.namedModules()]
    .filter(([, m]) => m instanceof AdapterV2Attention || isExtensibleAttention(m))
    .map(([p]) => p);
  const first = att.length ? attnPaths.indexOf(att[0]![0]) : attnPaths.length;
  const tm =
    typeof info.target_modules === 'string' && info.target_modules !== 'all'
      ? info.target_modules
      : [...new Set(lin.map(([p]) => p.split('.').pop()!))].sort();
  const config = {
    peft_type: 'ADAPTER_V2',
    task_type: 'CAUSAL_LM',
    adapter_prompt_length: att[0]?.[1].promptLength ?? 10,
    adapter_start_layer: first,
    target_modules: tm,
    base_model_name_or_path: info.base_model_name_or_path ?? null,
  };
  const tensors: Record<string, TensorData> = {};
  for (const [k, { tensor }] of adapterTensors(model)) tensors[k] = tensorData(tensor.detach());
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  writeFileAtomic(join(dir, ADAPTER_CONFIG), [new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`)]);
  return config;
}

/** Read and check an Adapter-V2 adapter_config.json. */
export function readAdapterV2Config(dir: string): AdapterV2Settings & Record<string, unknown> {
  const file = join(dir, ADAPTER_CONFIG);
  if (!existsSync(file)) throw new MedloraError(`${dir}: no ${ADAPTER_CONFIG} (is this an adapter folder?)`);
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new MedloraError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (c.peft_type !== 'ADAPTER_V2')
    throw new MedloraError(`${file}: peft_type ${JSON.stringify(c.peft_type)} is not ADAPTER_V2`);
  const s = c as AdapterV2Settings & Record<string, unknown>;
  checkSettings(s, file);
  return s;
}

function load(
  model: Module,
  dir: string,
): { method: 'adapter_v2'; config: Record<string, unknown>; modules: string[] } {
  const config = readAdapterV2Config(dir);
  const file = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(file)) throw new MedloraError(`${dir}: no ${ADAPTER_WEIGHTS}`);
  const st = SafetensorsFile.open(file);
  const modules = apply(model, config);
  try {
    const want = adapterTensors(model);
    const have = st.names();
    const missing = [...want.keys()].filter((k) => !st.has(k));
    const extra = have.filter((k) => !want.has(k));
    if (missing.length || extra.length) {
      throw new MedloraError(
        `${file}: does not fit this model:${missing.length ? ` missing ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` (+${missing.length - 3})` : ''};` : ''}` +
          `${extra.length ? ` unexpected ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ` (+${extra.length - 3})` : ''};` : ''} (adapter for another architecture, or other adapter_start_layer / target_modules?)`,
      );
    }
    for (const [k, { tensor, set }] of want) {
      const i = st.info(k);
      if (i.shape.length !== tensor.ndim || i.shape.some((d, j) => d !== tensor.shape[j])) {
        throw new MedloraError(
          `${file}: '${k}' has shape [${i.shape.join(', ')}]; expected [${tensor.shape.join(', ')}]`,
        );
      }
      const t = fromBytes(st.read(k), engineDType(i.dtype, `${file}: '${k}'`), i.shape);
      try {
        set(t);
      } finally {
        t.dispose();
      }
    }
  } catch (e) {
    unload(model);
    throw e;
  }
  return { method: 'adapter_v2', config, modules };
}

/** Remove the wrappers (norm weights stay as loaded / trained). */
function unload(model: Module): void {
  for (const [p, a] of adapterV2Attentions(model)) {
    const [parent, name] = parentOf(model, p);
    a.adapter_wte.dispose();
    a.gating_factor.dispose();
    parent.setChild(name, a.unwrap());
  }
  for (const [p, l] of adapterV2Linears(model)) {
    const [parent, name] = parentOf(model, p);
    l.adapter_bias.dispose();
    l.adapter_scale.dispose();
    parent.setChild(name, l.base_layer);
  }
}

/** Fold bias and scale into the linear layers: W' = diag(scale) W, b' = scale * (b + adapter_bias). The prefix cannot be merged. */
function merge(model: Module): string[] {
  const att = adapterV2Attentions(model);
  if (att.length) {
    throw new MedloraError(
      `merge: cannot merge an Adapter-V2 adapter with a prefix (${att.length} layer(s) from ${att[0]![0]}): the prefix is extra attention ` +
        'over learned rows (adapter_wte, gated by gating_factor), not a change of any weight, so no standard checkpoint can hold it; apply the adapter when loading the base model instead',
    );
  }
  const lin = adapterV2Linears(model);
  if (!lin.length) throw new MedloraError('merge: the model has no Adapter-V2 parameters');
  for (const [p, l] of lin) {
    const base = l.base_layer;
    const w = base.ownParameters().find(([n]) => n === 'weight')?.[1];
    if (!w || w.dtype === 'u8')
      throw new MedloraError(`merge: '${p}' has no floating-point weight to merge into (4-bit or tied base)`);
    const b = base.ownParameters().find(([n]) => n === 'bias')?.[1];
    const biasNonZero = noGrad(() => scope(() => l.adapter_bias.abs().max().item())) !== 0;
    if (!b && biasNonZero) {
      throw new MedloraError(
        `merge: '${p}' has no bias of its own but a non-zero adapter_bias; the merged model would need one (config attention_bias / mlp_bias), which this model's layer lacks`,
      );
    }
    noGrad(() => {
      const s = l.adapter_scale;
      const W2 = scope(() =>
        (l.fanInFanOut ? w.to('f32').mul(s.view([1, -1])) : w.to('f32').mul(s.view([-1, 1]))).to(w.dtype).contiguous(),
      );
      base.setParam('weight', W2, model.namedParameters().filter(([, t]) => t === w).length > 1);
      if (b)
        base.setParam(
          'bias',
          scope(() => b.to('f32').add(l.adapter_bias).mul(s).to(b.dtype).contiguous()),
        );
    });
    l.adapter_bias.dispose();
    l.adapter_scale.dispose();
    const [parent, name] = parentOf(model, p);
    parent.setChild(name, base);
  }
  return lin.map(([p]) => p);
}

export const adapterV2Method: FinetuningMethod<AdapterV2Settings> = {
  name: 'adapter_v2',
  configSection: 'adapter_v2',
  recognizes: (c) => c.peft_type === 'ADAPTER_V2',
  present: (model) => adapterV2Linears(model).length > 0 || adapterV2Attentions(model).length > 0,
  apply,
  trainable: (model) => model.trainableParameters(),
  save,
  load,
  merge,
  mergeCheckpoint: (o) =>
    mergeInMemory(o, (model) => {
      load(model, o.adapter);
      return { merged: merge(model), configChanges: {} };
    }),
};

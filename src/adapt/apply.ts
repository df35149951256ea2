// Putting LoRA into a model (PEFT's get_peft_model): wrap every targeted LinearLike in a LoraLinear, freeze the rest;
// or, for full fine-tuning, unfreeze everything. Plus PEFT's trainable-parameter summary.
import { isTargetModule, type LoraConfig } from '../io/peft.js';
import { isLinearLike, type LinearLike, type Module } from '../model/module.js';
import { MedloraError } from '../util/errors.js';
import { isFloatDType, type Tensor } from '../tensor/index.js';
import { LoraLinear, type LoraInit, type LoraLinearOptions } from './lora.js';

export type LoraSettings = Pick<LoraConfig, 'r' | 'lora_alpha' | 'lora_dropout' | 'target_modules'> &
  Partial<Pick<LoraConfig, 'use_rslora' | 'layers_to_transform' | 'layers_pattern' | 'exclude_modules'>> & {
    init?: LoraInit;
  };

/** Linear-like modules a LoRA could wrap: not LoRA wrappers themselves, nor anything inside one. */
export function linearModulePaths(model: Module): string[] {
  const lora = loraModules(model).map(([p]) => p);
  const out: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === '' || m instanceof LoraLinear || lora.some((l) => path.startsWith(`${l}.`))) continue;
    if (isLinearLike(m)) out.push(path);
  }
  return out;
}

/** The module at a dotted path ('' = the model), or undefined. */
export function resolve(model: Module, path: string): Module | undefined {
  let m: Module | undefined = model;
  if (path === '') return m;
  for (const part of path.split('.')) {
    m = m?.child(part);
    if (!m) return undefined;
  }
  return m;
}

/** Every LoRA wrapper in the model with its path. */
export function loraModules(model: Module): Array<[string, LoraLinear]> {
  const out: Array<[string, LoraLinear]> = [];
  for (const [path, m] of model.namedModules()) if (m instanceof LoraLinear) out.push([path, m]);
  return out;
}

/**
 * Wrap every targeted linear layer (PEFT's matching: a list entry equals the path or its last dotted component(s); a
 * string is a regex that must match the whole path) in a LoraLinear; freeze every other parameter. Returns the wrapped
 * paths in model order (`Wrapper`: a LoraLinear subclass, e.g. DoRA's). A list entry that matches no linear layer is an error naming the available names.
 */
export function applyLora(
  model: Module,
  s: LoraSettings,
  Wrapper: new (base: LinearLike, o: LoraLinearOptions) => LoraLinear = LoraLinear,
): string[] {
  if (loraModules(model).length)
    throw new MedloraError('applyLora: the model already has LoRA adapters (merge or reload it first)');
  const candidates = linearModulePaths(model);
  // PEFT compares the "all-linear" shorthand lowercased (tuners_utils._maybe_include_all_linear_layers)
  const tm =
    typeof s.target_modules === 'string' && s.target_modules.toLowerCase() === 'all-linear'
      ? 'all-linear'
      : s.target_modules;
  const targets =
    tm === 'all-linear' ? allLinearTargets(model, candidates) : candidates.filter((p) => isTargetModule(s, p));
  const available = (): string => {
    const names = [...new Set(candidates.map((p) => p.split('.').pop()!))];
    return `linear layers in this model: ${names.join(', ') || '(none)'}`;
  };
  if (Array.isArray(tm)) {
    const unmatched = tm.filter((t) => !candidates.some((p) => p === t || p.endsWith(`.${t}`)));
    if (unmatched.length)
      throw new MedloraError(`LoRA target_modules ${JSON.stringify(unmatched)} match no linear layer (${available()})`);
  } else if (targets.length === 0) {
    throw new MedloraError(`LoRA target_modules ${JSON.stringify(tm)} matches no linear layer (${available()})`);
  }
  for (const [, t] of model.namedParameters()) if (t.requiresGrad) t.requiresGrad_(false);
  for (const path of targets) {
    const dot = path.lastIndexOf('.');
    const parent = resolve(model, dot < 0 ? '' : path.slice(0, dot))!;
    const name = path.slice(dot + 1);
    const base = parent.child(name) as LinearLike;
    parent.setChild(
      name,
      new Wrapper(base, {
        r: s.r,
        loraAlpha: s.lora_alpha,
        loraDropout: s.lora_dropout,
        useRslora: s.use_rslora ?? false,
        init: s.init ?? true,
      }),
    );
  }
  return targets;
}

/**
 * PEFT's target_modules "all-linear" (peft 0.21 tuners_utils._maybe_include_all_linear_layers): every Linear / Conv1D
 * (NF4 linears included, as bitsandbytes' Linear4bit is an nn.Linear) except the output embedding
 * (get_output_embeddings(): lm_head in every architecture medlora loads) and anything inside a LoRA wrapper.
 */
export function allLinearTargets(model: Module, candidates = linearModulePaths(model)): string[] {
  const head = resolve(model, 'lm_head');
  return candidates.filter((p) => !(head !== undefined && resolve(model, p) === head) && p !== 'lm_head');
}

/** finetuning: full — every floating-point parameter trains (no adapter). Returns how many tensors were unfrozen. */
export function enableFullFinetuning(model: Module): number {
  if (loraModules(model).length)
    throw new MedloraError('full fine-tuning: the model has LoRA adapters; use finetuning: lora or merge first');
  let n = 0;
  for (const t of uniqueParams(model)) {
    if (!isFloatDType(t.dtype)) continue; // e.g. NF4 codes: quantized weights cannot be trained directly
    if (!t.requiresGrad) t.requiresGrad_(true);
    n++;
  }
  return n;
}

function uniqueParams(model: Module): Tensor[] {
  const seen = new Set<Tensor>();
  for (const [, t] of model.namedParameters()) seen.add(t);
  return [...seen];
}

export interface TrainableSummary {
  trainable: number;
  total: number;
  /** 100 * trainable / total */
  percent: number;
  /** the line PEFT's print_trainable_parameters() prints */
  line: string;
}

/** What a quantized layer (Nf4Linear) exposes so that its weight counts as in*out parameters, not packed bytes. */
interface HasQuantizedWeight {
  quantizedWeight(): { tensors: Tensor[]; logicalNumel: number };
}

/**
 * Parameter counts over unique tensors (a tied embedding counts once); a 4-bit weight counts as the in*out weights it
 * stands for (not its packed bytes and scales).
 */
export function trainableParameterSummary(model: Module): TrainableSummary {
  let trainable = 0,
    total = 0;
  const quantized = new Set<Tensor>();
  for (const [, m] of model.namedModules()) {
    const q = (m as Partial<HasQuantizedWeight>).quantizedWeight?.();
    if (!q) continue;
    q.tensors.forEach((t) => quantized.add(t));
    total += q.logicalNumel;
  }
  for (const t of uniqueParams(model)) {
    if (quantized.has(t)) continue;
    total += t.numel;
    if (t.requiresGrad) trainable += t.numel;
  }
  const percent = total ? (100 * trainable) / total : 0;
  const line = `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${total.toLocaleString('en-US')} || trainable%: ${percent.toFixed(4)}`;
  return { trainable, total, percent, line };
}

// The fine-tuning-method registry: pick a method by name (the config's `finetuning`) or by an adapter folder's
// adapter_config.json (peft_type / use_dora), and the dispatching load / save / merge everything above adapt uses.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Module } from '../../model/module.js';
import { shareWeights } from '../../model/share.js';
import { ADAPTER_CONFIG } from '../../io/peft.js';
import { MedloraError } from '../../util/errors.js';
import type { MergeCheckpointOptions, MergeCheckpointReport } from '../merge-checkpoint.js';
import { adapterV2Method } from './adapter-v2.js';
import { doraMethod } from './dora.js';
import { loraMethod } from './lora.js';
import { METHOD_NAMES, type FinetuningMethod, type LoadedMethodAdapter, type MethodName } from './types.js';

export * from './types.js';

const METHODS: Record<MethodName, FinetuningMethod<never>> = {
  lora: loraMethod as FinetuningMethod<never>,
  dora: doraMethod as FinetuningMethod<never>,
  adapter_v2: adapterV2Method as FinetuningMethod<never>,
};

export function methodNamed(name: string): FinetuningMethod<never> {
  const m = METHODS[name as MethodName];
  if (!m)
    throw new MedloraError(
      `finetuning: ${JSON.stringify(name)} is not a fine-tuning method (${METHOD_NAMES.join(', ')})`,
    );
  return m;
}

/** The method whose adapter a folder holds, from its adapter_config.json. */
export function methodOfAdapter(dir: string): FinetuningMethod<never> {
  const file = join(dir, ADAPTER_CONFIG);
  if (!existsSync(file)) throw new MedloraError(`${dir}: no ${ADAPTER_CONFIG} (is this a PEFT adapter folder?)`);
  let c: unknown;
  try {
    c = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new MedloraError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (c === null || typeof c !== 'object' || Array.isArray(c))
    throw new MedloraError(`${file}: expected a JSON object`);
  const m = METHOD_NAMES.map((n) => METHODS[n]).find((x) => x.recognizes(c as Record<string, unknown>));
  if (!m)
    throw new MedloraError(
      `${file}: peft_type ${JSON.stringify((c as Record<string, unknown>).peft_type)} is not supported (LORA, LORA with use_dora, ADAPTER_V2)`,
    );
  return m;
}

/** The method whose adapters the model carries, or undefined for a plain model. */
export function methodOfModel(model: Module): FinetuningMethod<never> | undefined {
  const found = METHOD_NAMES.map((n) => METHODS[n]).filter((m) => m.present(model));
  if (found.length > 1)
    throw new MedloraError(`the model carries adapters of several methods (${found.map((m) => m.name).join(', ')})`);
  return found[0];
}

/** Load any supported adapter folder onto the model (dispatch on adapter_config.json). */
export function loadAnyAdapter(model: Module, dir: string): LoadedMethodAdapter {
  return methodOfAdapter(dir).load(model, dir);
}

/**
 * A model over `base`'s weights (shared, not copied: src/model/share.ts) with the adapter folder (any method)
 * applied to its own wrappers; `base` itself is left unchanged, so one base can carry any number of these.
 */
export function loadAdapterShared<M extends Module>(base: M, dir: string): { model: M; adapter: LoadedMethodAdapter } {
  const model = shareWeights(base);
  try {
    return { model, adapter: loadAnyAdapter(model, dir) };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Merge the model's adapters (whatever the method) into its weights, or a MedloraError saying why not. */
export function mergeAnyAdapter(model: Module): string[] {
  const m = methodOfModel(model);
  if (!m) throw new MedloraError('merge: the model has no adapters');
  return m.merge(model);
}

/** `medlora merge`: checkpoint + adapter folder (any method) -> merged HF checkpoint. */
export function mergeAnyCheckpoint(o: MergeCheckpointOptions): MergeCheckpointReport & { method: MethodName } {
  const m = methodOfAdapter(o.adapter);
  return { ...m.mergeCheckpoint(o), method: m.name };
}

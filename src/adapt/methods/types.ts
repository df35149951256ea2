// The fine-tuning-method seam: what every method module (lora.ts, dora.ts, adapter-v2.ts) provides, so that the
// trainer, eval / extract / serve loading, `medlora merge` and the demo handle adapters without naming a method.
import type { Tensor } from '../../tensor/index.js';
import type { Module } from '../../model/module.js';
import type { MergeCheckpointOptions, MergeCheckpointReport } from '../merge-checkpoint.js';

export type MethodName = 'lora' | 'dora' | 'adapter_v2';
export const METHOD_NAMES: readonly MethodName[] = ['lora', 'dora', 'adapter_v2'];

/** What save() may take from the run besides the model (written into adapter_config.json). */
export interface SaveInfo {
  base_model_name_or_path?: string | null;
  /** the targets as configured (a regex string stays a regex) */
  target_modules?: string[] | string;
}

export interface LoadedMethodAdapter {
  method: MethodName;
  /** adapter_config.json as written */
  config: Record<string, unknown>;
  /** adapted module paths */
  modules: string[];
}

export interface FinetuningMethod<S = unknown> {
  readonly name: MethodName;
  /** the training config section this method's settings live in */
  readonly configSection: 'lora' | 'adapter_v2';
  /** whether an adapter_config.json object is this method's */
  recognizes(adapterConfig: Record<string, unknown>): boolean;
  /** whether the model currently carries this method's adapters */
  present(model: Module): boolean;
  /** add fresh adapters to the model and freeze everything that does not train; returns the adapted module paths */
  apply(model: Module, settings: S): string[];
  /** the parameters that train (after apply or load) */
  trainable(model: Module): Array<[string, Tensor]>;
  /** write adapter_config.json + adapter_model.safetensors; returns the config written */
  save(model: Module, dir: string, info?: SaveInfo): Record<string, unknown>;
  /** apply the adapter folder's settings and copy its tensors in (dir's adapter_config.json is this method's) */
  load(model: Module, dir: string): LoadedMethodAdapter;
  /** fold the adapters into the base weights (or throw a MedloraError saying why they cannot be); returns merged paths */
  merge(model: Module): string[];
  /** `medlora merge` at the file level: checkpoint + adapter folder -> a standard HF checkpoint */
  mergeCheckpoint(o: MergeCheckpointOptions): MergeCheckpointReport;
}

// Helpers for the transformers-5 fixtures (test/fixtures/hf5, written by make_hf5.py): a folder per model, its batch and
// the values transformers (+ PEFT) computed from those very files.
import { existsSync, mkdtempSync, readFileSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/io/safetensors.js';
import { bytesToNumbers } from '../../src/io/dtype.js';
import { packageRoot } from '../../src/util/paths.js';

export const HF5_MODELS = [
  'llama-tiny',
  'llama3-tiny-tied',
  'llama-tiny-linear',
  'qwen2-tiny',
  'mistral-tiny',
  'stablelm-tiny',
  'gpt2-tiny',
] as const;
/** [model, adapter folder] pairs saved by PEFT 0.21 with its defaults */
export const HF5_ADAPTERS = [
  ['llama-tiny', 'adapter-lm-head'],
  ['llama-tiny', 'adapter-layers'],
  ['gpt2-tiny', 'adapter-lm-head'],
] as const;

export const hf5Path = (...p: string[]): string => join(packageRoot(), 'test', 'fixtures', 'hf5', ...p);

const materialised = new Map<string, string>();
/**
 * The model folder. Folders whose weights are bitwise those of another fixture (the generator checked it) hold no
 * model.safetensors: expected.json names the file, and a temporary folder pairs it with the transformers-5 config.json.
 */
export function hf5Model(name: string): string {
  const dir = hf5Path(name);
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  const done = materialised.get(name);
  if (done) return done;
  const { weights } = hf5Expected(name) as { weights?: string };
  if (!weights) throw new Error(`${dir}: no model.safetensors and no "weights" in expected.json`);
  const d = mkdtempSync(join(tmpdir(), `medlora-hf5-${name}-`));
  copyFileSync(join(dir, 'config.json'), join(d, 'config.json'));
  symlinkSync(hf5Path(weights), join(d, 'model.safetensors'));
  materialised.set(name, d);
  return d;
}

export function hf5Batch(name: string): { input_ids: number[][]; labels: number[][] } {
  return JSON.parse(readFileSync(hf5Path(name, 'batch.json'), 'utf8')) as { input_ids: number[][]; labels: number[][] };
}

export function hf5Expected(
  ...p: string[]
): Record<string, unknown> & { loss: number; loss_lora: number; loss_merged: number; merged_keys: string[] } {
  return JSON.parse(readFileSync(hf5Path(...p, 'expected.json'), 'utf8')) as never;
}

/** A tensor of <folder>/expected.safetensors as numbers. */
export function hf5Tensor(key: string, ...p: string[]): Float64Array {
  const src = openCheckpoint(hf5Path(...p, 'expected.safetensors'));
  return bytesToNumbers(src.info(key).dtype, src.read(key));
}

// Building a run's training contract (src/data/contract.ts) from its resolved config, the loaded model and the
// training records; setup.ts writes it beside every adapter it saves (checkpoints and the final one).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CONTRACT_SCHEMA,
  CONTRACT_SCHEMA_VERSION,
  sha256,
  type ContractTask,
  type TrainingContract,
} from '../data/contract.js';
import { newReport, readJsonl, recordProblem } from '../data/jsonl.js';
import type { MedRecord } from '../data/schema.js';
import { TASKS } from '../data/tasks.js';
import type { TextTokenizer } from '../tokenize/types.js';
import { packageRoot } from '../util/paths.js';
import type { TrainConfig } from './config.js';

export function medloraVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Tasks of the training records, each with the instruction its prompts used (the most common one). */
async function recordTasks(file: string): Promise<ContractTask[]> {
  const by = new Map<string, Map<string, number>>();
  for await (const r of readJsonl<MedRecord>(file, recordProblem, newReport(file), { skipInvalid: true })) {
    const ins =
      r.instruction ?? (TASKS as Record<string, { instruction: string } | undefined>)[r.task]?.instruction ?? '';
    const m = by.get(r.task) ?? new Map<string, number>();
    m.set(ins, (m.get(ins) ?? 0) + 1);
    by.set(r.task, m);
  }
  return [...by.entries()].map(([name, m]) => {
    const sorted = [...m.entries()].sort((a, b) => b[1] - a[1]);
    const total = sorted.reduce((a, [, k]) => a + k, 0);
    return { name, instruction: sorted[0]![0], records: total, other_instructions: total - sorted[0]![1] };
  });
}

/**
 * The contract of a run. `format` is how the training file was read; `computeDtype` the dtype the base was loaded in;
 * `tok` the tokenizer (absent for pre-tokenized data).
 */
export async function trainingContract(
  cfg: TrainConfig,
  o: { format: 'records' | 'tokenized'; computeDtype: string; tok?: TextTokenizer | undefined },
): Promise<TrainingContract> {
  const cfgFile = join(cfg.model, 'config.json');
  const cfgBytes = existsSync(cfgFile) ? readFileSync(cfgFile) : undefined;
  let nameOrPath: string | null = null;
  try {
    const v = cfgBytes
      ? (JSON.parse(cfgBytes.toString('utf8')) as { _name_or_path?: unknown })._name_or_path
      : undefined;
    if (typeof v === 'string' && v) nameOrPath = v;
  } catch {
    /* unreadable: hash only */
  }
  const tokDir = cfg.tokenizer ?? cfg.model;
  const records = o.format === 'records';
  const style = cfg.data.prompt_style;
  const template =
    records && style === 'chat' && o.tok?.chatTemplate !== undefined
      ? { sha256: sha256(o.tok.chatTemplate), source: tokDir, text: o.tok.chatTemplate }
      : null;
  return {
    schema: CONTRACT_SCHEMA,
    schema_version: CONTRACT_SCHEMA_VERSION,
    medlora_version: medloraVersion(),
    base_model: { path: cfg.model, name_or_path: nameOrPath, config_sha256: cfgBytes ? sha256(cfgBytes) : null },
    tokenizer: { path: tokDir },
    compute_dtype: o.computeDtype,
    data_format: o.format,
    prompt: records ? { style, chat_template: template } : null,
    max_length: cfg.data.max_length,
    overflow: cfg.data.overflow,
    tasks: records ? await recordTasks(cfg.data.train) : [],
    quantization: { load_in_4bit: cfg.quantization.load_in_4bit },
  };
}

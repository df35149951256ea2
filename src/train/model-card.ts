// The adapter's model card: README.md in the Hugging Face model-card format (YAML front matter: base_model,
// library_name, tags, datasets, metrics, pipeline_tag, license when the base model states one; see
// huggingface_hub's ModelCardData and the PEFT card template), then the task, data, hyperparameters, training time
// and hardware, an evaluation table, intended use and limitations. Every number comes from the run (or from
// `medlora eval --compare`, which rewrites the evaluation section between its markers).
// Over ~400 lines on purpose: one document, its sections in reading order; each section is a short function here.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { MedloraError } from '../util/errors.js';
import type { TrainConfig } from './config.js';
import { isEval, isGenerateEval, type MetricRecord } from './metrics.js';

export const CARD_FILE = 'README.md';
const EVAL_BEGIN = '<!-- medlora:evaluation:begin -->';
const EVAL_END = '<!-- medlora:evaluation:end -->';

/** One column of the evaluation table. */
export interface CardEvalRun {
  name: string;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  test_loss: number | null;
  records: number | null;
}

export interface CardEvaluation {
  /** what was evaluated, e.g. "held-out test split test.jsonl (598 records), strict matching" */
  data: string;
  runs: CardEvalRun[];
  /** where the numbers come from */
  source: string;
}

export interface SplitInfo {
  file: string;
  seed?: number;
  stratify?: string;
  group?: string | null;
  input_records?: number;
  duplicates_dropped?: unknown[];
  counts?: Record<string, { total: number }>;
}

export interface ModelCardInfo {
  baseModel: string;
  /** config finetuning (lora, dora, adapter_v2); absent = lora */
  method?: string;
  license: string | null;
  tasks: string[];
  datasets: string[];
  data: Array<{ split: string; file: string; examples: number; dropped: number }>;
  split: SplitInfo | null;
  hyperparameters: Array<[string, string]>;
  training: {
    steps: number;
    totalSteps: number;
    wallSeconds: number;
    tokensPerSecond: number;
    hardware: string;
    stoppedEarly: boolean;
    finalFrom: string | null;
  };
  evaluation: CardEvaluation | null;
}

// ---------------------------------------------------------------------------------------------------------------
// rendering

const f3 = (x: number | null): string => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(3));
const f4 = (x: number | null): string => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(4));

function duration(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s - 60 * m)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** The evaluation section (between markers, so `medlora eval` can replace it). */
export function renderEvaluation(e: CardEvaluation | null): string {
  const lines = [EVAL_BEGIN, '## Evaluation', ''];
  if (!e || e.runs.length === 0) {
    lines.push(
      'No evaluation yet. `medlora eval --model BASE --adapter THIS_FOLDER --data test.jsonl --compare base` writes base vs fine-tuned scores here.',
    );
  } else {
    lines.push(`${e.data}.`, '');
    lines.push(`| metric | ${e.runs.map((r) => r.name).join(' | ')} |`, `|---|${e.runs.map(() => '---:').join('|')}|`);
    lines.push(`| precision (micro) | ${e.runs.map((r) => f3(r.precision)).join(' | ')} |`);
    lines.push(`| recall (micro) | ${e.runs.map((r) => f3(r.recall)).join(' | ')} |`);
    lines.push(`| F1 (micro) | ${e.runs.map((r) => f3(r.f1)).join(' | ')} |`);
    lines.push(`| loss (gold answers) | ${e.runs.map((r) => f4(r.test_loss)).join(' | ')} |`);
    lines.push(`| records | ${e.runs.map((r) => (r.records === null ? '–' : String(r.records))).join(' | ')} |`);
    lines.push('', `Source: ${e.source}.`);
  }
  lines.push(EVAL_END);
  return lines.join('\n');
}

/** YAML front matter fields (huggingface_hub ModelCardData names). */
export function frontMatter(info: ModelCardInfo): Record<string, unknown> {
  const fm: Record<string, unknown> = {
    base_model: info.baseModel,
    library_name: 'peft',
    ...(info.license ? { license: info.license } : {}),
    tags: [
      'medlora',
      info.method ?? 'lora',
      `base_model:adapter:${info.baseModel}`,
      'medical',
      'biomedical',
      'information-extraction',
      ...info.tasks,
    ],
    ...(info.datasets.length ? { datasets: info.datasets } : {}),
    metrics: ['precision', 'recall', 'f1', 'loss'],
    pipeline_tag: 'text-generation',
  };
  return fm;
}

/** How the card names each fine-tuning method (config finetuning). */
const METHOD_LABEL: Record<string, string> = { lora: 'LoRA', dora: 'DoRA', adapter_v2: 'LLaMA-Adapter V2' };

export function renderModelCard(info: ModelCardInfo): string {
  const label = METHOD_LABEL[info.method ?? 'lora'] ?? info.method!;
  const peft = info.method !== 'adapter_v2'; // PEFT has no Adapter-V2: that adapter loads in medlora only
  const title = `${basename(info.baseModel)} ${label} adapter for ${info.tasks.length ? info.tasks.join(', ') : 'medical information extraction'}`;
  const out: string[] = ['---', stringifyYaml(frontMatter(info)).trimEnd(), '---', '', `# ${title}`, ''];
  out.push(
    `A ${label} adapter (${peft ? 'PEFT format' : "medlora's ADAPTER_V2 format, PEFT-style keys; PEFT cannot load it"}) for \`${info.baseModel}\`, fine-tuned with medlora to extract drug and medical information from text.`,
    '',
  );
  out.push('## Task', '');
  out.push(
    info.tasks.length
      ? `Tasks trained on: ${info.tasks.map((t) => `\`${t}\``).join(', ')} (medlora task names: the instruction and answer format are fixed per task).`
      : 'Trained on pre-tokenized rows (no task names recorded).',
    '',
  );
  out.push('## Training data', '', '| split | file | examples used | dropped (too long) |', '|---|---|---:|---:|');
  for (const d of info.data) out.push(`| ${d.split} | \`${basename(d.file)}\` | ${d.examples} | ${d.dropped} |`);
  out.push('');
  if (info.split) {
    const s = info.split;
    const counts = Object.entries(s.counts ?? {})
      .map(([k, v]) => `${k} ${v.total}`)
      .join(', ');
    out.push(
      `Split by \`medlora data split\` from \`${basename(s.file)}\`${s.input_records !== undefined ? ` (${s.input_records} records` : ''}${s.duplicates_dropped ? `, ${s.duplicates_dropped.length} exact duplicates dropped` : ''}${s.input_records !== undefined ? ')' : ''}: ${counts}; seed ${s.seed ?? '?'}, stratified by ${s.stratify ?? '?'}${s.group ? `, grouped by ${s.group}` : ''}.`,
    );
    out.push(
      `Leakage check: passed — no input text${s.group ? ` and no ${s.group}` : ''} is shared between splits (the split refuses to write otherwise).`,
      '',
    );
  } else {
    out.push(
      'Leakage check: no split-report.json beside the training file, so the split was not checked by medlora.',
      '',
    );
  }
  out.push('## Training procedure', '', '| hyperparameter | value |', '|---|---|');
  for (const [k, v] of info.hyperparameters) out.push(`| ${k} | ${v} |`);
  out.push('');
  const t = info.training;
  out.push('### Training time and hardware', '');
  out.push(
    `${t.steps} of ${t.totalSteps} updates in ${duration(t.wallSeconds)} (${t.tokensPerSecond.toFixed(0)} trained tokens/s) on ${t.hardware}.${t.stoppedEarly ? ' Early stopping ended the run.' : ''}${t.finalFrom ? ` The adapter holds the best checkpoint's weights (${basename(t.finalFrom)}).` : ''}`,
    '',
  );
  out.push(renderEvaluation(info.evaluation), '');
  out.push('## Intended use and limitations', '');
  out.push(
    '- Intended for research and for building information-extraction pipelines over biomedical text (drug–drug interactions, chemicals, diseases, adverse events), with human review of the output.',
  );
  out.push(
    '- **Not for clinical decisions.** This is medical information extracted by a statistical model: it misses facts and invents some. Never use its output to diagnose, treat, prescribe or dose; check every extraction against the source text and an authoritative reference.',
  );
  out.push(
    '- The scores above hold for data like the evaluation set; other sources, writing styles or languages will score lower.',
  );
  out.push('- It inherits the biases and the license terms of the base model and of the training data.', '');
  out.push(
    '## How to use',
    '',
    ...(peft
      ? [
          '```python',
          'from peft import PeftModel',
          'from transformers import AutoModelForCausalLM',
          '',
          `base = AutoModelForCausalLM.from_pretrained("${info.baseModel}")`,
          'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
          '```',
        ]
      : [
          '```bash',
          `medlora extract --model ${info.baseModel} --adapter path/to/this/folder --task TASK "<a sentence>"`,
          '```',
        ]),
    '',
  );
  return `${out.join('\n')}`;
}

/** The YAML front matter of a card as an object (what the Hub reads). */
export function parseFrontMatter(text: string, file = CARD_FILE): Record<string, unknown> {
  const m = /^---\n([\s\S]*?)\n---\n/.exec(text);
  if (!m) throw new MedloraError(`${file}: no YAML front matter (--- ... ---) at the top`);
  const v = parseYaml(m[1]!) as unknown;
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new MedloraError(`${file}: the front matter is not a mapping`);
  return v as Record<string, unknown>;
}

/** Replace the evaluation section of an existing card; false when the folder has no medlora card. */
export function updateCardEvaluation(adapterDir: string, e: CardEvaluation): boolean {
  const file = join(adapterDir, CARD_FILE);
  if (!existsSync(file)) return false;
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(EVAL_BEGIN),
    b = text.indexOf(EVAL_END);
  if (a < 0 || b < a) return false;
  writeFileSync(file, text.slice(0, a) + renderEvaluation(e) + text.slice(b + EVAL_END.length));
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// gathering the facts of a finished run

/** Distinct `task` values of a JSONL file of canonical records (none for tokenized rows). */
function tasksOf(file: string): string[] {
  if (!existsSync(file)) return [];
  const tasks = new Set<string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const t = (JSON.parse(line) as { task?: unknown }).task;
      if (typeof t === 'string') tasks.add(t);
    } catch {
      /* the loader already reported bad lines */
    }
  }
  return [...tasks].sort();
}

/** base_model: the checkpoint's Hub name when config.json records one ("org/name"), else the folder name. */
function baseModelName(modelDir: string): string {
  try {
    const c = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as { _name_or_path?: unknown };
    if (
      typeof c._name_or_path === 'string' &&
      /^[\w.-]+\/[\w.-]+$/.test(c._name_or_path) &&
      !existsSync(c._name_or_path)
    )
      return c._name_or_path;
  } catch {
    /* fall through */
  }
  return basename(resolve(modelDir));
}

/** license from the base model's own card (README.md front matter), when it has one. */
function baseLicense(modelDir: string): string | null {
  const f = join(modelDir, CARD_FILE);
  if (!existsSync(f)) return null;
  try {
    const l = parseFrontMatter(readFileSync(f, 'utf8'), f).license;
    return typeof l === 'string' ? l : null;
  } catch {
    return null;
  }
}

/** The validation metrics of the run: the last eval_loss and generation scores (or those of the best step). */
export function validationEvaluation(records: readonly MetricRecord[], atStep: number | null): CardEvaluation | null {
  const evals = records.filter(isEval),
    gens = records.filter(isGenerateEval);
  const pick = <T extends MetricRecord>(rs: T[]): T | undefined =>
    (atStep !== null ? rs.find((r) => r.step === atStep) : undefined) ?? rs[rs.length - 1];
  const e = pick(evals),
    g = pick(gens);
  if (!e && !g) return null;
  const step = g?.step ?? e!.step;
  return {
    data: `Validation during training (step ${step}${atStep !== null ? ', the best checkpoint' : ''}): loss on data.validation${e ? ` (${e.eval_tokens} answer tokens)` : ''}${g ? `; precision / recall / F1 by generation on the first ${g.gen_samples} validation records` : ''}`,
    runs: [
      {
        name: 'fine-tuned',
        precision: g?.gen_precision ?? null,
        recall: g?.gen_recall ?? null,
        f1: g?.gen_f1 ?? null,
        test_loss: e?.eval_loss ?? null,
        records: g?.gen_samples ?? null,
      },
    ],
    source:
      "the run's metrics.jsonl; run `medlora eval --compare base --compare <this folder>` on the test split for base vs fine-tuned",
  };
}

export interface RunFacts {
  cfg: TrainConfig;
  reports: Array<{ file: string; examples: number; dropped: number }>;
  records: readonly MetricRecord[];
  steps: number;
  totalSteps: number;
  wallSeconds: number;
  tokensPerSecond: number;
  device: string;
  trainableParams: number;
  totalParams: number;
  stoppedEarly: boolean;
  finalFrom: string | null;
  bestStep: number | null;
}

export function modelCardInfo(f: RunFacts): ModelCardInfo {
  const { cfg } = f;
  const t = cfg.training,
    l = cfg.lora;
  const splitFile = join(dirname(resolve(cfg.data.train)), 'split-report.json');
  let split: SplitInfo | null = null;
  if (existsSync(splitFile)) {
    try {
      split = JSON.parse(readFileSync(splitFile, 'utf8')) as SplitInfo;
    } catch {
      split = null;
    }
  }
  const tasks = tasksOf(cfg.data.train);
  const source = split?.file ? basename(split.file) : basename(cfg.data.train);
  const cpu = cpus();
  const hardware =
    f.device === 'cpu'
      ? `CPU (${cpu[0]?.model.trim() ?? 'unknown'}, ${cpu.length} cores visible), libtorch through medlora's addon`
      : `CUDA device ${f.device}, libtorch through medlora's addon`;
  const hp: Array<[string, string]> = [
    [
      'method',
      `${METHOD_LABEL[cfg.finetuning] ?? cfg.finetuning}${cfg.quantization.load_in_4bit ? ' on an NF4 (4-bit) base (QLoRA)' : ''}`,
    ],
    ...(cfg.finetuning === 'adapter_v2'
      ? [
          [
            'adapter_prompt_length / adapter_start_layer',
            `${cfg.adapter_v2.adapter_prompt_length} / ${cfg.adapter_v2.adapter_start_layer}`,
          ] as [string, string],
          [
            'target_modules',
            Array.isArray(cfg.adapter_v2.target_modules)
              ? cfg.adapter_v2.target_modules.join(', ')
              : cfg.adapter_v2.target_modules,
          ] as [string, string],
        ]
      : [
          [
            'r / lora_alpha / lora_dropout',
            `${l.r} / ${l.lora_alpha} / ${l.lora_dropout}${l.use_rslora ? ' (rsLoRA)' : ''}`,
          ] as [string, string],
          ['target_modules', Array.isArray(l.target_modules) ? l.target_modules.join(', ') : l.target_modules] as [
            string,
            string,
          ],
        ]),
    [
      'trainable parameters',
      `${f.trainableParams.toLocaleString('en-US')} of ${f.totalParams.toLocaleString('en-US')} (${((100 * f.trainableParams) / Math.max(1, f.totalParams)).toFixed(3)}%)`,
    ],
    [
      'learning_rate / scheduler',
      `${t.learning_rate} / ${t.lr_scheduler_type}${Object.keys(t.lr_scheduler_kwargs ?? {}).length ? ` ${JSON.stringify(t.lr_scheduler_kwargs)}` : ''}`,
    ],
    [
      'warmup',
      t.warmup_steps > 0 ? `${t.warmup_steps} update${t.warmup_steps === 1 ? '' : 's'}` : `ratio ${t.warmup_ratio}`,
    ],
    ['updates', `${f.steps} (planned ${f.totalSteps})`],
    ['batch size × accumulation', `${t.per_device_train_batch_size} × ${t.gradient_accumulation_steps}`],
    [
      'optimizer',
      `${t.optim} (betas ${t.adam_beta1}, ${t.adam_beta2}; eps ${t.adam_epsilon}; weight decay ${t.weight_decay})`,
    ],
    ['max_grad_norm', String(t.max_grad_norm)],
    ['precision', t.bf16 ? 'bf16 base' : 'f32'],
    ['max_length / prompt', `${cfg.data.max_length ?? 'none'} / ${cfg.data.prompt_style}`],
    ...(t.neftune_noise_alpha !== null
      ? [['neftune_noise_alpha', String(t.neftune_noise_alpha)] as [string, string]]
      : []),
    ...(t.metric_for_best_model !== null
      ? [
          [
            'best checkpoint by',
            `${t.metric_for_best_model} (${t.greater_is_better ? 'higher' : 'lower'} is better)${t.early_stopping_patience !== null ? `, early stopping patience ${t.early_stopping_patience}` : ''}`,
          ] as [string, string],
        ]
      : []),
    ['seed', String(t.seed)],
  ];
  return {
    baseModel: baseModelName(cfg.model),
    method: cfg.finetuning,
    license: baseLicense(cfg.model),
    tasks,
    datasets: [source],
    data: f.reports.map((r, i) => ({
      split: i === 0 ? 'train' : 'validation',
      file: r.file,
      examples: r.examples,
      dropped: r.dropped,
    })),
    split,
    hyperparameters: hp,
    training: {
      steps: f.steps,
      totalSteps: f.totalSteps,
      wallSeconds: f.wallSeconds,
      tokensPerSecond: f.tokensPerSecond,
      hardware,
      stoppedEarly: f.stoppedEarly,
      finalFrom: f.finalFrom,
    },
    evaluation: validationEvaluation(f.records, f.finalFrom ? f.bestStep : null),
  };
}

/** Write README.md into the adapter folder. */
export function writeModelCard(adapterDir: string, info: ModelCardInfo): string {
  const file = join(adapterDir, CARD_FILE);
  writeFileSync(file, renderModelCard(info));
  return file;
}

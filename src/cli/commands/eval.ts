// `medlora eval`: batched generation over a test split, P/R/F1 (per type, micro, macro), test loss and perplexity,
// and an error report; --compare runs the base model and adapters side by side (glue over src/eval/run-eval.ts).
import { basename, dirname, join, resolve } from 'node:path';
import type { CommandSpec, ParsedArgs } from '../command.js';
import { bool, list, num, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { THREADS_OPTION } from '../threads.js';
import { DEVICE_OPTION, deviceFromFlag } from '../device.js';
import { DIST_OPTIONS, startRanks } from '../distributed.js';
import type { FieldNames } from '../../data/contract.js';
import type { PromptStyle } from '../../data/prompt.js';
import type { Device } from '../../tensor/index.js';

/** Options shared with `medlora extract`: model, tokenizer, prompt and generation settings. */
export const GENERATION_OPTIONS: CommandSpec['options'] = {
  model: {
    type: 'string',
    value: 'DIR',
    required: true,
    description: 'Hugging Face model folder (config.json + safetensors + tokenizer)',
  },
  adapter: { type: 'string', value: 'DIR', description: 'PEFT LoRA adapter folder to apply' },
  tokenizer: { type: 'string', value: 'DIR', description: 'tokenizer folder (default: --model)' },
  prompt: {
    type: 'string',
    value: 'STYLE',
    field: 'prompt_style',
    description:
      "prompt style used in training: alpaca or chat (default: the adapter's training contract, else alpaca)",
  },
  'max-length': {
    type: 'number',
    value: 'N',
    description:
      "shorten inputs as training with data.max_length N did (default: the adapter's training contract, else no limit)",
  },
  'max-new-tokens': {
    type: 'number',
    value: 'N',
    default: 256,
    description: 'most tokens generated per answer (EOS included)',
  },
  'batch-size': { type: 'number', value: 'N', default: 8, description: 'prompts per generation batch' },
  temperature: { type: 'number', value: 'T', default: 0, description: 'sampling temperature; 0 = greedy' },
  'top-k': { type: 'number', value: 'K', description: 'sample from the K most likely tokens' },
  'top-p': { type: 'number', value: 'P', description: 'nucleus sampling mass' },
  'repetition-penalty': {
    type: 'number',
    value: 'X',
    default: 1,
    description: 'HF repetition penalty (> 1 discourages repeats; 1 = off)',
  },
  seed: { type: 'number', value: 'N', default: 0, description: 'sampling seed (batch b uses seed + b)' },
  constrain: {
    type: 'boolean',
    default: true,
    description: "constrain tokens to the task's answer format (--no-constrain to compare)",
  },
  dtype: {
    type: 'string',
    value: 'f32|bf16',
    description: "compute dtype (default: the adapter's training contract, else the checkpoint's)",
  },
  'load-in-4bit': {
    type: 'boolean',
    description:
      "NF4-quantize the base's linear layers while loading (as QLoRA training holds them; lm_head stays full precision): a quarter of the memory",
  },
  device: DEVICE_OPTION,
  threads: THREADS_OPTION,
};

/** How the training contract's fields are spelled on the command line (warnings name the flag). */
export const CONTRACT_FLAGS: FieldNames = {
  prompt_style: '--prompt',
  max_length: '--max-length',
  compute_dtype: '--dtype',
  tasks: '--task',
};

/** The explicit --prompt / --max-length (undefined when not given: the adapter's contract decides). */
export function explicitPrompt(args: ParsedArgs): { promptStyle?: PromptStyle; maxLength?: number } {
  const prompt = str(args, 'prompt');
  if (prompt !== undefined && prompt !== 'alpaca' && prompt !== 'chat')
    throw new MedloraError(`--prompt must be alpaca or chat, got "${prompt}"`);
  const maxLength = num(args, 'max-length');
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 2))
    throw new MedloraError(`--max-length must be an integer >= 2, got ${maxLength}`);
  return {
    ...(prompt !== undefined ? { promptStyle: prompt } : {}),
    ...(maxLength !== undefined ? { maxLength } : {}),
  };
}

/** Generation settings from the shared flags (prompt style and max length: see explicitPrompt and the contract). */
export function generationSettings(args: ParsedArgs, cmd: string): Record<string, unknown> {
  void cmd;
  return {
    ...explicitPrompt(args),
    maxNewTokens: num(args, 'max-new-tokens'),
    batchSize: num(args, 'batch-size'),
    temperature: num(args, 'temperature'),
    topK: num(args, 'top-k'),
    topP: num(args, 'top-p'),
    repetitionPenalty: num(args, 'repetition-penalty'),
    seed: num(args, 'seed'),
    constrain: args.options.constrain !== false,
  };
}

/** Load the model (and tokenizer) once, after the engine-wide settings (src/infer/load-extractor.ts), onto `device`
 * (the resolved --device); the adapter too when `withAdapter` (eval applies its adapters one by one itself). */
export async function loadModelAndTokenizer(
  args: ParsedArgs,
  cmd: string,
  device: Device,
  withAdapter = false,
  extra: { tasks?: string[]; contractFrom?: string } = {},
) {
  const { loadExtractor } = await import('../../infer/load-extractor.js');
  const tok = str(args, 'tokenizer');
  const dtype = str(args, 'dtype');
  const threads = num(args, 'threads');
  const adapter = withAdapter ? str(args, 'adapter') : undefined;
  const loaded = loadExtractor({
    model: str(args, 'model')!,
    where: `medlora ${cmd}`,
    device,
    ...explicitPrompt(args),
    fieldNames: CONTRACT_FLAGS,
    ...(tok !== undefined ? { tokenizer: tok } : {}),
    ...(dtype !== undefined ? { dtype } : {}),
    ...(threads !== undefined ? { threads } : {}),
    ...(adapter !== undefined ? { adapter } : {}),
    ...(extra.tasks ? { tasks: extra.tasks } : {}),
    ...(extra.contractFrom !== undefined ? { contractFrom: extra.contractFrom } : {}),
    ...(bool(args, 'load-in-4bit') ? { loadIn4bit: true } : {}),
  });
  for (const w of loaded.warnings) console.error(`warning: ${w}`);
  if (loaded.quantized) {
    const { formatBytes } = await import('../../adapt/nf4-linear.js');
    const q = loaded.quantized;
    console.error(
      `medlora ${cmd}: base linears quantized to NF4: ${q.layers.length} layers, ${formatBytes(q.bytesBefore)} -> ${formatBytes(q.bytesAfter)}`,
    );
  }
  return loaded;
}

interface RunSpec {
  name: string;
  adapter: string | null;
}

/** --compare values: "base", an adapter folder, or NAME=DIR / NAME=base. */
export function compareRuns(values: string[]): RunSpec[] {
  const runs = values.map((v) => {
    const eq = v.indexOf('=');
    const [name, target] = eq > 0 ? [v.slice(0, eq), v.slice(eq + 1)] : [undefined, v];
    if (target === '') throw new MedloraError(`--compare "${v}": expected base, an adapter folder, or NAME=DIR`);
    const adapter = target === 'base' ? null : target;
    return {
      name:
        name ??
        (adapter === null
          ? 'base'
          : basename(resolve(adapter)) === 'adapter'
            ? basename(dirname(resolve(adapter)))
            : basename(resolve(adapter))),
      adapter,
    };
  });
  // checked before any model runs, so a naming mistake costs nothing and leaves no half-written output folder
  const seen = new Set<string>();
  for (const r of runs) {
    if (seen.has(r.name))
      throw new MedloraError(`two compared runs share the name "${r.name}"; name them (--compare NAME=DIR)`);
    seen.add(r.name);
  }
  return runs;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
}

export const evalCommand: CommandSpec = {
  name: 'eval',
  summary: 'Evaluate a model (+ adapters) on a test split by generation: P/R/F1, test loss, perplexity, error report',
  details: [
    '--data holds canonical records (src/data/schema.ts) of one structured task (or pick one with --task).',
    "Prompts are built exactly as in training: the prompt style, max_length, instructions and dtype come from the adapter's",
    'training contract (medlora_contract.json, written by medlora train); --prompt / --max-length / --dtype that contradict',
    'it win with a warning. A plain PEFT adapter: --prompt alpaca and no limit unless given. With --compare, each adapter',
    "run follows its own contract and a run without one (base) follows the first compared adapter's, so they compare alike.",
    'Outputs (--out DIR; default: <adapter>-eval beside the adapter folder, else ./eval-<timestamp>):',
    '  predictions.jsonl  {"id", "output", "pred", "unparsed", "finish_reason", "truncated", "new_tokens"} per record',
    '  scores.json        P/R/F1 per type, micro, macro; test_loss, perplexity; parse_rate; timing (ms per token, constraint ms per token)',
    '  report.json        the scoring report (errors by type) + the same eval summary',
    '  report.html        tables and false positives / false negatives per type with example texts',
    'Comparing runs: --compare base --compare runs/a/adapter --compare tuned=runs/b/adapter (repeatable; NAME=DIR names a run).',
    'The base model is loaded once; each adapter is applied, evaluated and removed. One report covers all runs and each',
    "run's predictions go to <out>/<name>/predictions.jsonl. Matching options are those of medlora score (strict by default).",
  ].join('\n'),
  options: {
    ...GENERATION_OPTIONS,
    data: { type: 'string', value: 'FILE', required: true, description: 'test records (JSONL)' },
    task: {
      type: 'string',
      value: 'TASK',
      description: 'evaluate only records of this task (required when --data mixes tasks)',
    },
    limit: { type: 'number', value: 'N', description: 'evaluate only the first N records' },
    compare: {
      type: 'string',
      value: 'base|DIR|NAME=DIR',
      multiple: true,
      description: 'a run to compare with --adapter (repeatable); base = the model without adapter',
    },
    out: { type: 'string', value: 'DIR', description: 'output folder' },
    relaxed: { type: 'boolean', description: 'match after normalisation (as medlora score --relaxed)' },
    metric: {
      type: 'string',
      value: 'typed|pooled-set',
      default: 'typed',
      description: 'scoring metric (as medlora score --metric)',
    },
    loss: {
      type: 'boolean',
      default: true,
      description: 'also compute the test loss and perplexity (--no-loss to skip)',
    },
    json: { type: 'boolean', description: 'print scores.json to stdout (progress as JSON lines is not mixed in)' },
    quiet: { type: 'boolean', description: 'no progress bar' },
    ...DIST_OPTIONS,
  },
  async run(args) {
    // checked before anything starts or loads (each rank of several takes its local rank's CUDA device)
    const device = await deviceFromFlag(args, { ranks: true });
    // several ranks (--nproc-per-node or torchrun): each generates its share of the records, rank 0 writes the outputs
    const ranks = await startRanks('eval', args);
    if ('exitCode' in ranks) return ranks.exitCode;
    const parallel = ranks.parallel;
    const main = (parallel?.rank ?? 0) === 0;
    const { loadRecords } = await import('../../data/jsonl.js');
    const { structuredTask } = await import('../../infer/generate-answers.js');
    const { evaluateModel, evalText, writeEvalOutputs } = await import('../../eval/run-eval.js');
    const { DEFAULT_MATCH, parseMetric } = await import('../../eval/match.js');
    const metric = parseMetric(str(args, 'metric'), '--metric');
    const { Progress } = await import('../../util/progress.js');
    const dataFile = str(args, 'data')!;
    const compare = list(args, 'compare');
    // --adapter A --compare base: A is evaluated beside the compared runs (after them, so the base comes first)
    const runs: RunSpec[] = compare.length
      ? compareRuns([...compare, ...(str(args, 'adapter') ? [str(args, 'adapter')!] : [])])
      : [
          {
            name: str(args, 'adapter') ? compareRuns([str(args, 'adapter')!])[0]!.name : 'base',
            adapter: str(args, 'adapter') ?? null,
          },
        ];
    const settings = generationSettings(args, 'eval');
    const limit = num(args, 'limit');
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
      throw new MedloraError(`medlora eval: --limit must be a positive integer, got ${limit}`);

    // records: one structured task
    const { records: all } = await loadRecords(dataFile);
    const tasks = [...new Set(all.map((r) => r.task))];
    const taskArg = str(args, 'task');
    if (taskArg === undefined && tasks.length > 1)
      throw new MedloraError(
        `${dataFile}: holds records of several tasks (${tasks.join(', ')}); choose one with --task`,
      );
    const task = structuredTask(taskArg ?? tasks[0]!, taskArg !== undefined ? '--task' : `${dataFile}`);
    let records = all.filter((r) => r.task === task);
    if (records.length === 0)
      throw new MedloraError(`${dataFile}: no records of task ${task} (it holds ${tasks.join(', ')})`);
    if (limit !== undefined) records = records.slice(0, limit);

    const onlyAdapter = runs.length === 1 ? runs[0]!.adapter : null;
    const out =
      str(args, 'out') ??
      (onlyAdapter
        ? join(dirname(resolve(onlyAdapter)), `${basename(resolve(onlyAdapter))}-eval`)
        : `eval-${timestamp()}`);
    const json = bool(args, 'json');
    const quiet = bool(args, 'quiet') || json || !main;
    // the model is loaded once: its dtype (and the chat template) come from the first compared adapter's contract;
    // each run then prompts as its own adapter's contract says (a run without one, e.g. base, as the first one's)
    const firstAdapter = runs.find((r) => r.adapter !== null)?.adapter ?? undefined;
    const taskFlag = taskArg !== undefined ? { tasks: [task] } : {};
    const { model, tok, modelDir } = await loadModelAndTokenizer(args, 'eval', device, false, {
      ...taskFlag,
      ...(firstAdapter !== undefined ? { contractFrom: firstAdapter } : {}),
    });
    const { inferenceSettings } = await import('../../infer/load-extractor.js');
    const runSettings = (
      adapter: string | null,
    ): { promptStyle: PromptStyle; maxLength?: number; instructions: Record<string, string> } => {
      const { settings } = inferenceSettings(adapter ?? firstAdapter, {
        ...explicitPrompt(args),
        fieldNames: CONTRACT_FLAGS,
      });
      if (adapter !== null && adapter !== firstAdapter)
        for (const w of settings.warnings) console.error(`warning: ${w}`);
      return {
        promptStyle: settings.prompt_style,
        ...(settings.max_length !== undefined ? { maxLength: settings.max_length } : {}),
        instructions: settings.instructions,
      };
    };
    const { loadAnyAdapter } = await import('../../adapt/methods/index.js');
    const { unloadLora } = await import('../../adapt/merge.js');
    const done: Array<{
      name: string;
      model: string;
      adapter: string | null;
      device: Device;
      run: ReturnType<typeof evaluateModel>;
    }> = [];
    try {
      for (const spec of runs) {
        if (spec.adapter) loadAnyAdapter(model, spec.adapter);
        try {
          const label = runs.length > 1 ? `eval ${spec.name}` : 'eval';
          let bar: InstanceType<typeof Progress> | undefined;
          let phase = '';
          const rs = runSettings(spec.adapter);
          const run = evaluateModel(model, tok, records, {
            ...settings,
            ...rs,
            match: { ...DEFAULT_MATCH, mode: bool(args, 'relaxed') ? 'relaxed' : 'strict', metric },
            loss: args.options.loss !== false,
            dataLabel: dataFile,
            predLabel: join(out, runs.length > 1 ? spec.name : '', 'predictions.jsonl'),
            parallel,
            onProgress: (p, n, total) => {
              if (p !== phase) {
                bar?.end();
                bar = new Progress({
                  total,
                  label: `${label} ${p === 'generate' ? 'generate' : 'loss'}`,
                  unit: 'records',
                  quiet,
                });
                phase = p;
              }
              bar!.update(n);
            },
          });
          bar?.end();
          done.push({ name: spec.name, model: modelDir, adapter: spec.adapter, device, run });
        } finally {
          if (spec.adapter) unloadLora(model);
        }
      }
    } finally {
      model.dispose();
    }
    parallel?.destroy();
    if (!main) return 0;
    const written = writeEvalOutputs(out, done, `medlora eval: ${task} (${basename(dataFile)})`);
    // an adapter folder with a medlora model card gets this comparison as its evaluation table
    const { updateCardEvaluation } = await import('../../train/model-card.js');
    const cardRuns = done.map((d) => ({
      name: d.name,
      precision: d.run.score.metrics.micro.precision,
      recall: d.run.score.metrics.micro.recall,
      f1: d.run.score.metrics.micro.f1,
      test_loss: d.run.loss ? d.run.loss.loss : null,
      records: d.run.parse.records,
    }));
    for (const d of done) {
      if (
        d.adapter &&
        updateCardEvaluation(d.adapter, {
          data: `\`medlora eval\` on \`${basename(dataFile)}\` (${records.length} records, task ${task}, ${bool(args, 'relaxed') ? 'relaxed' : 'strict'} matching)`,
          runs: cardRuns,
          source: `${join(out, 'scores.json')}`,
        })
      ) {
        written.files.push(join(d.adapter, 'README.md'));
      }
    }
    if (json) console.log(JSON.stringify(written.scores));
    else {
      console.log(evalText(done));
      console.log(`\nwrote ${written.files.join(', ')}`);
    }
    return 0;
  },
};

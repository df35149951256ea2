// `medlora demo`, the whole product end to end on built-in data: demo data -> tokenizer + base model (LM
// pretraining) -> LoRA fine-tune (preset-shaped) -> base vs fine-tuned evaluation -> example extractions and
// report.html. With `model`, steps 3-5 run on the user's checkpoint instead. Every step is a function of its own file;
// this file only sequences them and tells the user what happens and where files go.
// Over ~400 lines on purpose: the five steps' user-facing narration (progress, paths, explanations) in one place.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadAnyAdapter } from '../adapt/methods/index.js';
import { loadModel } from '../model/load.js';
import type { LoadedModel } from '../model/registry.js';
import { loadTokenizer, type LoadedTokenizer } from '../tokenize/tokenizer.js';
import { MetricsLog } from '../train/metrics.js';
import { DEMO_DRUGS, DEMO_TEMPLATES } from '../data/demo-corpus.js';
import type { MedRecord } from '../data/schema.js';
import { fieldError } from '../util/errors.js';
import { setNumThreads } from '../tensor/index.js';
import { fmtTime, Progress } from '../util/progress.js';
import { pretrainBase } from './base.js';
import { buildDemoData } from './data.js';
import { extractExamples, pickExamples, renderExamples } from './extract.js';
import { DEMO_PRESET, finetune, finetuneOverrides, type FinetuneOptions } from './finetune.js';
import { compareMethods } from './compare.js';
import { scoreRows, textTable, writeDemoReport, type ScoredRun } from './report.js';
import { demoSettings, type DemoSettings } from './settings.js';
import { buildDemoTokenizer } from './tokenizer.js';
import { evaluateModel, writeEvalOutputs, type EvalRun, type NamedEvalRun } from '../eval/run-eval.js';
import type { GenerationSettings, ProgressFn } from '../infer/generate-answers.js';

/** The file that marks a folder as a demo run (so a second `medlora demo` may replace it). */
export const DEMO_MARKER = 'demo.json';

export interface DemoOptions {
  out: string;
  steps?: number;
  records?: number;
  /** an existing Hugging Face checkpoint: skip the tokenizer and base steps */
  model?: string;
  seed: number;
  json?: boolean;
  /** no progress bars */
  quiet?: boolean;
  /** engine threads (default 1 unless MEDLORA_NUM_THREADS is set) */
  threads?: number;
  /** fine-tune once per method (lora, dora, adapter_v2) and print the comparison table instead of steps 3-5 */
  methods?: string[];
  /** replace parts of the built-in settings (programmatic only: for tuning experiments and tests) */
  tune?: (s: DemoSettings) => void;
}

export interface DemoSummary {
  out: string;
  wall_seconds: number;
  step_seconds: Record<string, number>;
  model: string;
  data: { train: number; validation: number; test: number };
  scores: Record<string, { precision: number; recall: number; f1: number; exact: number }>;
  examples: Array<{ sentence: string; triplets: string[]; correct: boolean }>;
  files: Record<string, string>;
}

/** Refuse to write into a non-empty folder that is not an earlier demo run; clear an earlier demo run. */
export function prepareOutDir(out: string): void {
  if (existsSync(out)) {
    const entries = readdirSync(out);
    if (entries.length && !entries.includes(DEMO_MARKER) && !entries.includes('.demo-running')) {
      throw fieldError(
        'out',
        `out ${out} is not empty and holds no earlier demo run (${DEMO_MARKER}); choose another folder`,
      );
    }
    for (const e of entries) rmSync(join(out, e), { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, '.demo-running'), '');
}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const start = Date.now();
  const out = resolve(o.out);
  const json = o.json ?? false;
  const userModel = o.model !== undefined ? resolve(o.model) : undefined;
  if (userModel && !existsSync(join(userModel, 'config.json')))
    throw fieldError('model', `model ${o.model}: no config.json there (expected a Hugging Face checkpoint folder)`);
  const settings = demoSettings({
    ...(o.steps !== undefined ? { steps: o.steps } : {}),
    ...(o.records !== undefined ? { records: o.records } : {}),
  });
  if (userModel) adaptToCheckpoint(settings, o.steps);
  o.tune?.(settings);
  // one compute thread unless MEDLORA_NUM_THREADS says otherwise: for this model's small matrices a second thread
  // gains little, and when another process holds a core, two threads wait on each other (measured on the 2-core CI
  // machine under load: 1 thread 2.7x faster than 2 for the same short demo run)
  if (o.threads !== undefined) setNumThreads(o.threads);
  else if (!process.env.MEDLORA_NUM_THREADS) setNumThreads(1);
  const say = (text: string, event?: Record<string, unknown>): void => {
    if (json) {
      if (event) process.stdout.write(`${JSON.stringify(event)}\n`);
    } else process.stdout.write(`${text}\n`);
  };
  const bar = (label: string, total: number, unit?: string): Progress =>
    new Progress({ label, total, json, quiet: o.quiet ?? false, ...(unit ? { unit } : {}) });
  const times: Record<string, number> = {};
  let t = Date.now();
  const lap = (name: string): number => {
    const s = (Date.now() - t) / 1000;
    times[name] = s;
    t = Date.now();
    return s;
  };

  prepareOutDir(out);
  say(
    `medlora demo: ${userModel ? `LoRA fine-tuning your checkpoint ${userModel}` : 'the whole pipeline on built-in data'}, written to ${out}\n`,
    { event: 'demo-start', out, model: userModel ?? null },
  );

  // 1. data
  const data = await buildDemoData(join(out, 'data'), { count: settings.records, seed: o.seed });
  lap('data');
  say(
    `[1/5] data: ${data.report.input_records} DrugBank-style interaction sentences generated from ${DEMO_TEMPLATES.length} interaction templates and ` +
      `${DEMO_DRUGS.length} drug names, split by drug pair into train ${data.train.length} / validation ${data.validation.length} / test ${data.test.length}\n` +
      `      -> ${data.dir}/ (demo-corpus.jsonl, train/validation/test.jsonl, split-report.json)`,
    {
      event: 'step',
      step: 'data',
      seconds: times.data,
      train: data.train.length,
      validation: data.validation.length,
      test: data.test.length,
      dir: data.dir,
    },
  );

  // 2. tokenizer + base model
  let tok: LoadedTokenizer;
  let base: LoadedModel;
  let baseDir: string;
  let tokDir: string;
  let modelLine: string;
  const curves: Array<{ title: string; records: ReturnType<MetricsLog['read']> }> = [];
  if (!userModel) {
    tokDir = join(out, 'tokenizer');
    tok = buildDemoTokenizer(tokDir, data.train, { vocabSize: settings.vocabSize });
    baseDir = join(out, 'base');
    const m = settings.model;
    say(
      `[2/5] tokenizer: byte-level BPE with ${tok.vocabSize} tokens trained on the training split -> ${tokDir}/\n` +
        `      base model: Llama, ${m.layers} layers, hidden ${m.hidden}, ${m.heads} heads, random init, trained as a plain language model on the training sentences as DrugBank table rows (${settings.base.steps} steps)`,
      { event: 'step', step: 'tokenizer', vocab_size: tok.vocabSize, dir: tokDir },
    );
    const p = bar('base LM', settings.base.steps);
    const b = await pretrainBase({
      dir: baseDir,
      tokenizerDir: tokDir,
      tok,
      train: data.train,
      validation: data.validation,
      settings,
      seed: o.seed,
      onStep: (done, total, loss, tps) => p.update(done, { loss, 'tok/s': Math.round(tps) }),
    });
    p.end();
    base = b.model;
    const log = new MetricsLog(join(baseDir, 'metrics.jsonl')).read();
    curves.push({ title: 'Base model: language-model pretraining', records: log });
    const evalLoss = [...log].reverse().find((r) => 'eval_loss' in r) as { eval_loss: number } | undefined;
    lap('base');
    modelLine = `demo Llama (${b.params.toLocaleString('en-US')} parameters, ${m.layers} layers, hidden ${m.hidden}), base trained ${settings.base.steps} steps`;
    say(
      `      base: ${b.params.toLocaleString('en-US')} parameters, ${b.train.steps} steps in ${fmtTime(times.base!)}` +
        `${evalLoss ? `, validation loss ${evalLoss.eval_loss.toFixed(3)}` : ''} -> ${baseDir}/ (config.json, model.safetensors, tokenizer, metrics.jsonl)`,
      {
        event: 'step',
        step: 'base',
        seconds: times.base,
        params: b.params,
        dir: baseDir,
        eval_loss: evalLoss?.eval_loss ?? null,
      },
    );
  } else {
    baseDir = userModel;
    tokDir = userModel;
    tok = loadTokenizer(userModel);
    base = loadModel(userModel);
    modelLine = `${userModel} (${base.config.model_type})`;
    lap('base');
    say(`[2/5] using your checkpoint ${userModel} (${base.config.model_type}, its own tokenizer); no base training`, {
      event: 'step',
      step: 'base',
      dir: userModel,
    });
  }
  const style = userModel ? (tok.chatTemplate ? 'chat' : 'alpaca') : 'chat';

  // 3. LoRA fine-tune on the split files as they are (the task's own instruction, as `medlora extract` uses it)
  const ft: FinetuneOptions = {
    model: baseDir,
    tokenizer: tokDir,
    train: data.files.train,
    validation: data.files.validation,
    runDir: out,
    settings,
    seed: o.seed,
    promptStyle: style,
    bf16: userModel ? isBf16(userModel) : false,
  };
  if (o.methods) {
    // --methods: one fine-tune per method, scored on the held-out split, then the table (src/demo/compare.ts)
    const layers =
      (base.config as Record<string, unknown>).num_hidden_layers ?? (base.config as Record<string, unknown>).n_layer;
    ft.adapterStartLayer = typeof layers === 'number' ? Math.min(2, layers - 1) : 2;
    base.dispose();
    const gen: Partial<GenerationSettings> = {
      promptStyle: style,
      batchSize: settings.generation.batchSize,
      maxNewTokens: settings.generation.maxNewTokens,
      maxLength: settings.finetune.maxLength,
    };
    const rows = await compareMethods(o.methods, ft, { tok, test: data.test, gen, json, quiet: o.quiet ?? false, say });
    lap('methods');
    const wall = (Date.now() - start) / 1000;
    const summary: DemoSummary = {
      out,
      wall_seconds: wall,
      step_seconds: times,
      model: modelLine,
      data: { train: data.train.length, validation: data.validation.length, test: data.test.length },
      scores: Object.fromEntries(
        rows.map((r) => [r.method, { precision: r.precision, recall: r.recall, f1: r.f1, exact: NaN }]),
      ),
      examples: [],
      files: { methods: join(out, 'methods.json'), ...Object.fromEntries(rows.map((r) => [r.method, r.adapter])) },
    };
    writeFileSync(join(out, DEMO_MARKER), `${JSON.stringify(summary, null, 2)}\n`);
    rmSync(join(out, '.demo-running'), { force: true });
    say(
      `\ndone in ${fmtTime(wall)} (${Object.entries(times)
        .map(([k, v]) => `${k} ${fmtTime(v)}`)
        .join(', ')}) -> ${join(out, 'methods.json')}`,
      { event: 'demo', ...summary },
    );
    return summary;
  }
  say(
    `[3/5] LoRA fine-tune on ddi-triplets: preset ${DEMO_PRESET} with demo flags\n      ${finetuneOverrides(ft)
      .filter(([k]) => !['model', 'output_dir', 'tokenizer', 'data.train', 'data.validation'].includes(k))
      .map(([k, v]) => `--${k} ${v}`)
      .join(' ')}`,
    { event: 'step', step: 'finetune-start', preset: DEMO_PRESET },
  );
  const f = await finetune(ft, { json, quiet: o.quiet ?? false });
  if (existsSync(join(out, 'report.html'))) renameSync(join(out, 'report.html'), join(out, 'train-report.html'));
  const ftLog = new MetricsLog(join(out, 'metrics.jsonl')).read();
  curves.push({ title: 'LoRA fine-tune on ddi-triplets', records: ftLog });
  lap('finetune');
  say(
    `      fine-tune: ${f.result.steps} steps in ${fmtTime(times.finetune!)} (${f.result.tokensPerSecond.toFixed(0)} tokens/s), ` +
      `${f.result.trainableParams.toLocaleString('en-US')} trainable LoRA parameters -> ${f.adapter}/ (PEFT adapter), ${join(out, 'metrics.jsonl')}`,
    { event: 'step', step: 'finetune', seconds: times.finetune, steps: f.result.steps, adapter: f.adapter },
  );

  // 4. evaluation (`medlora eval`'s library call): base first, then the same model with the saved adapter loaded
  // from disk; prompts are built and shortened exactly as the fine-tune built them
  const evalDir = join(out, 'eval');
  const gen: Partial<GenerationSettings> = {
    promptStyle: style,
    batchSize: settings.generation.batchSize,
    maxNewTokens: settings.generation.maxNewTokens,
    maxLength: settings.finetune.maxLength,
  };
  say(
    `[4/5] evaluating base and fine-tuned models on the ${data.test.length} held-out test records (greedy, ddi-triplets constrained decoding)`,
    { event: 'step', step: 'eval-start', records: data.test.length },
  );
  const evaluate = (label: string): EvalRun => {
    const bars: Partial<Record<Parameters<ProgressFn>[0], Progress>> = {};
    const run = evaluateModel(base, tok, data.test, {
      ...gen,
      dataLabel: data.files.test,
      onProgress: (phase, done, total) => {
        (bars[phase] ??= bar(`${label}: ${phase === 'generate' ? 'generate' : 'test loss'}`, total)).update(done);
      },
    });
    for (const b of Object.values(bars)) b.end();
    return run;
  };
  const evBase = evaluate('eval base');
  loadAnyAdapter(base, f.adapter);
  const evFt = evaluate('eval fine-tuned');
  lap('eval');
  const named: NamedEvalRun[] = [
    { name: 'base', model: baseDir, adapter: null, run: evBase },
    { name: 'fine-tuned', model: baseDir, adapter: f.adapter, run: evFt },
  ];
  writeEvalOutputs(evalDir, named, 'medlora demo: base vs fine-tuned on the held-out split');
  const runs: ScoredRun[] = named.map((r) => ({ name: r.name, result: r.run.score, loss: r.run.loss?.loss ?? null }));
  const { head, rows } = scoreRows(runs);
  const baseNote = userModel
    ? ''
    : '\n(the base model was only trained to continue text and has never seen the answer format, so it answers "none" or wrong triplets)';
  say(
    `\n${textTable(head, rows)}${baseNote}\n\n      -> ${evalDir}/ (report.html, scores.json, report.json; base/ and fine-tuned/predictions.jsonl)`,
    { event: 'scores', ...Object.fromEntries(runs.map((r) => [r.name, r.result.metrics.micro])) },
  );

  // 5. extraction examples and the report
  const picked = pickExamples(data.test as MedRecord<'ddi-triplets'>[], 3);
  const examples = extractExamples(base, tok, picked, gen);
  const reportFile = join(out, 'report.html');
  lap('extract');
  const wall = (Date.now() - start) / 1000;
  const files: Record<string, string> = {
    report: reportFile,
    data: data.dir,
    ...(userModel ? {} : { tokenizer: tokDir, base: baseDir }),
    adapter: f.adapter,
    'fine-tune metrics': join(out, 'metrics.jsonl'),
    'fine-tune config': join(out, 'config.resolved.json'),
    'training report': join(out, 'train-report.html'),
    'evaluation report': join(evalDir, 'report.html'),
    eval: evalDir,
    summary: join(out, DEMO_MARKER),
  };
  writeDemoReport(reportFile, {
    runDir: out,
    runs,
    curves,
    examples,
    facts: [
      ['model', modelLine],
      ['tokenizer', `${tok.vocabSize} tokens (${tokDir})`],
      [
        'data',
        `${data.train.length} train / ${data.validation.length} validation / ${data.test.length} test records, split by drug pair (seed ${o.seed})`,
      ],
      [
        'fine-tune',
        `LoRA r ${f.config.lora.r}, alpha ${f.config.lora.lora_alpha} on ${(f.config.lora.target_modules as string[]).join(', ')}; ${f.result.steps} steps, batch ${f.config.training.per_device_train_batch_size}, lr ${f.config.training.learning_rate} (${f.config.training.lr_scheduler_type}); preset ${DEMO_PRESET}`,
      ],
      ['trainable parameters', f.result.trainableParams.toLocaleString('en-US')],
      [
        'time per stage',
        Object.entries(times)
          .map(([k, v]) => `${k} ${fmtTime(v)}`)
          .join(', '),
      ],
      ['total wall time', fmtTime(wall)],
    ],
    files: Object.entries(files).filter(([k]) => k !== 'report'),
  });
  say(`[5/5] extractions by the fine-tuned model on held-out sentences:\n${renderExamples(examples)}`, {
    event: 'step',
    step: 'extract',
    examples: examples.map((x) => ({ sentence: x.sentence, output: x.output, correct: x.correct })),
  });

  const summary: DemoSummary = {
    out,
    wall_seconds: wall,
    step_seconds: times,
    model: modelLine,
    data: { train: data.train.length, validation: data.validation.length, test: data.test.length },
    scores: Object.fromEntries(
      runs.map((r) => [
        r.name,
        {
          precision: r.result.metrics.micro.precision,
          recall: r.result.metrics.micro.recall,
          f1: r.result.metrics.micro.f1,
          exact: r.result.metrics.exact.rate,
        },
      ]),
    ),
    examples: examples.map((x) => ({
      sentence: x.sentence,
      triplets: x.triplets.map((tr) => `<${tr.head}, ${tr.relation}, ${tr.tail}>`),
      correct: x.correct,
    })),
    files,
  };
  writeFileSync(join(out, DEMO_MARKER), `${JSON.stringify(summary, null, 2)}\n`);
  rmSync(join(out, '.demo-running'), { force: true });
  base.dispose();
  const q = (p: string): string => (/^[\w./+-]+$/.test(p) ? p : `'${p.replace(/'/g, "'\\''")}'`);
  const next = `medlora extract --model ${q(baseDir)} --adapter ${q(f.adapter)} --prompt ${style} --max-length ${settings.finetune.maxLength} --task ddi-triplets "<a sentence>"`;
  say(
    `\ndone in ${fmtTime(wall)}. Open the report: ${reportFile}\n` +
      `Everything is in ${out}/: data/, ${userModel ? '' : 'tokenizer/, base/, '}adapter/, metrics.jsonl, eval/, report.html, ${DEMO_MARKER}\n` +
      `Try the fine-tuned model on your own sentence: ${next}`,
    { event: 'demo', ...summary },
  );
  return summary;
}

/** With the user's checkpoint: the preset's own LoRA shape and a learning rate for a pretrained model. */
function adaptToCheckpoint(s: DemoSettings, steps: number | undefined): void {
  s.finetune = {
    ...s.finetune,
    r: 8,
    alpha: 16,
    learningRate: 2e-4,
    batch: 4,
    steps: steps ?? 100,
    warmup: 5,
    maxLength: 256,
  };
}

function isBf16(dir: string): boolean {
  try {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { torch_dtype?: string; dtype?: string };
    return (c.torch_dtype ?? c.dtype) === 'bfloat16';
  } catch {
    return false;
  }
}

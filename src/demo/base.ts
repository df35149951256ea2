// Demo step 2b: the "base" model. A small Llama with random weights is trained briefly, as a plain language model
// (every token of BOS + text + EOS is a target), on the training split's sentences as rows of a DrugBank interaction
// table ("Drug 1,Drug 2,Interaction Description", the CSV the drugbank-sentences importer reads), each record once in
// that column order and once with the description first, then saved as a standard Hugging Face folder (config.json,
// model.safetensors, tokenizer files) that `--model DIR` can read.
// Why table rows and not bare sentences: in a bare sentence the drug names are unpredictable, so the LM never needs
// to look back and copy a name; in a row one part repeats the names of the other, so pretraining grows the copying
// attention that extraction relies on (as any pretrained LLM has), without ever seeing the triplet format. Why both
// orders: names-first alone teaches copying lower-case names into the sentence, but extraction copies the other way
// (a capitalised sentence-initial "Sildenafil" must come out as "sildenafil", and "Drug 1" is sometimes the later name
// in the sentence); measured: with names-first rows only, 2/3 of the fine-tuned model's errors were a wrong first drug.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { enableFullFinetuning } from '../adapt/apply.js';
import type { MedRecord, Triplet } from '../data/schema.js';
import { padIdOf } from '../data/encode.js';
import { initModel, saveModel } from '../model/init.js';
import type { LoadedModel } from '../model/registry.js';
import type { LoadedTokenizer } from '../tokenize/tokenizer.js';
import { resolveConfig } from '../train/config.js';
import type { Example } from '../train/data.js';
import { Trainer, type TrainResult } from '../train/trainer.js';
import { MedloraError } from '../util/errors.js';
import { demoModelConfig, type DemoSettings } from './settings.js';

/** A record as a DrugBank table row: the drug names of its interactions, then its text ("warfarin,aspirin,Warfarin may ..."). */
export function tableRow(r: MedRecord): string {
  const names = (r.gold as Triplet[]).flatMap((t) => [t.head, t.tail]);
  return [...names, r.input].join(',');
}

/** The same row with the description first ("Warfarin may ...,warfarin,aspirin"). */
export function descriptionFirstRow(r: MedRecord): string {
  const names = (r.gold as Triplet[]).flatMap((t) => [t.head, t.tail]);
  return [r.input, ...names].join(',');
}

/** Language-model examples: BOS + row + EOS for both rows of every record, every position a target (labels = input ids). */
export function lmExamples(tok: LoadedTokenizer, records: MedRecord[]): Example[] {
  if (tok.bosId === undefined || tok.eosId === undefined)
    throw new MedloraError('demo tokenizer: needs BOS and EOS tokens');
  return records.flatMap((r) =>
    [tableRow(r), descriptionFirstRow(r)].map((row) => {
      const ids = [tok.bosId!, ...tok.encode(row, { addSpecialTokens: false }), tok.eosId!];
      return { input_ids: ids, labels: [...ids] };
    }),
  );
}

export interface BaseResult {
  dir: string;
  model: LoadedModel;
  rawConfig: Record<string, unknown>;
  train: TrainResult;
  params: number;
}

export interface BaseOptions {
  dir: string;
  tokenizerDir: string;
  tok: LoadedTokenizer;
  train: MedRecord[];
  validation: MedRecord[];
  settings: DemoSettings;
  seed: number;
  onStep?: (done: number, total: number, loss: number, tokPerSec: number) => void;
}

/** Initialise, pretrain and save the base model into `o.dir`; returns the (frozen) model, ready for evaluation. */
export async function pretrainBase(o: BaseOptions): Promise<BaseResult> {
  mkdirSync(o.dir, { recursive: true });
  const rawConfig = demoModelConfig(o.settings, o.tok);
  const model = initModel(rawConfig, { seed: o.seed });
  enableFullFinetuning(model);
  const b = o.settings.base;
  const cfg = resolveConfig(
    {
      model: o.dir,
      output_dir: o.dir,
      data: { train: 'demo sentences' },
      training: {
        learning_rate: b.learningRate,
        lr_scheduler_type: 'cosine',
        warmup_steps: b.warmup,
        max_steps: b.steps,
        per_device_train_batch_size: b.batch,
        per_device_eval_batch_size: 64,
        weight_decay: 0.01,
        logging_steps: 10,
        save_steps: null,
        seed: o.seed,
      },
    },
    [],
    'demo base pretraining',
  );
  const trainer = new Trainer({
    model,
    training: cfg.training,
    runDir: o.dir,
    train: lmExamples(o.tok, o.train),
    validation: lmExamples(o.tok, o.validation),
    padId: padIdOf(o.tok),
    onStep: (done, total, r) => o.onStep?.(done, total, r.loss, r.tokens_per_second),
  });
  const res = await trainer.train();
  for (const [, p] of model.namedParameters()) if (p.requiresGrad) p.requiresGrad_(false);
  model.eval();
  saveModel(model, rawConfig, o.dir);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(o.tokenizerDir, f), join(o.dir, f));
  const params = model.parameters().reduce((a, p) => a + p.numel, 0);
  return { dir: o.dir, model, rawConfig, train: res, params };
}

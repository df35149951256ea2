// `medlora train`: LoRA fine-tuning from a YAML/JSON config (HF TrainingArguments / PEFT names), flags overriding the
// file, with a progress bar (or --json lines), metrics.jsonl, checkpoints, resume, Ctrl-C = save and stop, report.html.
import type { CommandSpec } from '../command.js';
import { bool, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { THREADS_OPTION } from '../threads.js';
import { DIST_OPTIONS, startRanks } from '../distributed.js';

/** A path as one shell word (quoted only when it needs to be). */
function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export const trainCommand: CommandSpec = {
  name: 'train',
  summary: 'Fine-tune a model with LoRA from a config file (YAML or JSON)',
  options: {
    config: {
      type: 'string',
      value: 'FILE',
      description: 'training config (configs/*.yaml presets, or your own); required unless --resume RUN_DIR',
    },
    model: { type: 'string', value: 'DIR', description: "model folder (overrides the config's model)" },
    device: {
      type: 'string',
      value: 'auto|cpu|cuda|cuda:N',
      field: 'training.device',
      description:
        "where to train (overrides training.device; auto: this rank's CUDA device when there is one, else cpu)",
    },
    output: { type: 'string', value: 'DIR', field: 'output_dir', description: 'run directory (overrides output_dir)' },
    resume: {
      type: 'string',
      value: 'RUN_DIR|CHECKPOINT|latest',
      description:
        'continue a run: its folder alone (its config.resolved.json and newest checkpoint), a checkpoint-<step> folder, or latest (with --config)',
    },
    'dry-run': { type: 'boolean', description: 'print the resolved config and exit' },
    json: { type: 'boolean', description: 'machine-readable progress and result as JSON lines on stdout' },
    quiet: { type: 'boolean', description: 'no progress bar' },
    threads: THREADS_OPTION,
    ...DIST_OPTIONS,
  },
  allowExtra: true,
  details: [
    'Any config key can be overridden: --training.max_steps 5, or the short form --max_steps 5 (every key whose name',
    'is unique: --learning_rate, --lora_alpha, --seed, ...). Lists: --target_modules q_proj,v_proj. null: --eval_steps null.',
    'The run directory gets config.resolved.json, metrics.jsonl, checkpoint-<step>/, adapter/ and report.html.',
    'Ctrl-C finishes the current update, saves a checkpoint and exits with code 130; `medlora train --resume RUN_DIR`',
    "then continues from the run folder's config.resolved.json and its newest checkpoint (flags still override keys).",
    'Several processes (data parallel, c10d Gloo/NCCL): torchrun --nproc-per-node N --no-python node bin/medlora.js train ...',
    'or --nproc-per-node N; per_device_train_batch_size is per rank (the global batch is N times it).',
  ].join('\n'),
  async run(args) {
    const { readConfigFile, resolveConfig } = await import('../../train/config.js');
    const { resumeRun } = await import('../../train/checkpoint.js');
    let file = str(args, 'config');
    let resume = str(args, 'resume');
    const overrides: Array<[string, string]> = [];
    if (resume !== undefined && resume !== 'latest') {
      // --resume RUN_DIR or CHECKPOINT: the run's own resolved config (unless --config is given) and its checkpoint
      const t = resumeRun(resume);
      if (file === undefined) file = t.config;
      if (str(args, 'output') === undefined) overrides.push(['output_dir', t.runDir]);
      resume = t.checkpoint;
    }
    if (file === undefined) {
      throw new MedloraError(
        resume === 'latest'
          ? '--resume latest needs --config FILE (or give the run folder: --resume RUN_DIR)'
          : '--config FILE is required (or --resume RUN_DIR to continue a run)',
      );
    }
    if (str(args, 'model') !== undefined) overrides.push(['model', str(args, 'model')!]);
    if (str(args, 'output') !== undefined) overrides.push(['output_dir', str(args, 'output')!]);
    if (str(args, 'device') !== undefined) overrides.push(['training.device', str(args, 'device')!]);
    overrides.push(...args.extra);
    const cfg = resolveConfig(readConfigFile(file), overrides, file);
    const json = bool(args, 'json');
    (await import('../../data/contract.js')).checkMaxLength(cfg.data.max_length, cfg.model, 'data.max_length');
    if (bool(args, 'dry-run')) {
      console.log(JSON.stringify(cfg, null, 2));
      return 0;
    }
    const ranks = await startRanks('train', args, { spec: cfg.training.device, what: 'training.device' });
    if ('exitCode' in ranks) return ranks.exitCode;
    const parallel = ranks.parallel;
    const { runTraining } = await import('../../train/run.js');
    let res;
    try {
      res = await runTraining(cfg, {
        ...(resume !== undefined ? { resume } : {}),
        json,
        quiet: bool(args, 'quiet'),
        parallel,
        generateEval: async (model, c) => (await import('../../eval/run-eval.js')).trainingGenerateEval(model, c),
      });
    } finally {
      parallel?.destroy();
    }
    if (res.interrupted) {
      if (parallel && parallel.rank !== 0) return 130; // rank 0 says it
      const ranksNote = parallel ? ` (with the same ${parallel.worldSize} ranks)` : '';
      const cmd = `medlora train --resume ${shellQuote(cfg.output_dir)}`;
      const msg = `interrupted at step ${res.steps}; checkpoint saved in ${res.lastCheckpoint}. Resume with: ${cmd}${ranksNote}`;
      if (json)
        console.log(
          JSON.stringify({ event: 'interrupted', step: res.steps, checkpoint: res.lastCheckpoint, resume: cmd }),
        );
      console.error(msg);
      return 130;
    }
    if (res.steps === 0) throw new MedloraError('no update was run');
    return 0;
  },
};

// `medlora train`: LoRA fine-tuning from a YAML/JSON config (HF TrainingArguments / PEFT names), flags overriding the
// file, with a progress bar (or --json lines), metrics.jsonl, checkpoints, resume, Ctrl-C = save and stop, report.html.
import type { CommandSpec } from '../command.js';
import { bool, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { THREADS_OPTION } from '../threads.js';

export const trainCommand: CommandSpec = {
  name: 'train',
  summary: 'Fine-tune a model with LoRA from a config file (YAML or JSON)',
  options: {
    config: { type: 'string', value: 'FILE', required: true, description: 'training config (configs/*.yaml presets, or your own)' },
    model: { type: 'string', value: 'DIR', description: 'model folder (overrides the config\'s model)' },
    output: { type: 'string', value: 'DIR', description: 'run directory (overrides output_dir)' },
    resume: { type: 'string', value: 'DIR|latest', description: 'continue from a checkpoint folder, or the newest one in the run directory' },
    'dry-run': { type: 'boolean', description: 'print the resolved config and exit' },
    json: { type: 'boolean', description: 'machine-readable progress and result as JSON lines on stdout' },
    quiet: { type: 'boolean', description: 'no progress bar' },
    threads: THREADS_OPTION,
  },
  allowExtra: true,
  details: [
    'Any config key can be overridden: --training.max_steps 5, or the short form --max_steps 5 (every key whose name',
    'is unique: --learning_rate, --lora_alpha, --seed, ...). Lists: --target_modules q_proj,v_proj. null: --eval_steps null.',
    'The run directory gets config.resolved.json, metrics.jsonl, checkpoint-<step>/, adapter/ and report.html.',
    'Ctrl-C finishes the current update, saves a checkpoint and exits with code 130.',
  ].join('\n'),
  async run(args) {
    const { readConfigFile, resolveConfig } = await import('../../train/config.js');
    const file = str(args, 'config')!;
    const overrides: Array<[string, string]> = [];
    if (str(args, 'model') !== undefined) overrides.push(['model', str(args, 'model')!]);
    if (str(args, 'output') !== undefined) overrides.push(['output_dir', str(args, 'output')!]);
    overrides.push(...args.extra);
    const cfg = resolveConfig(readConfigFile(file), overrides, file);
    const json = bool(args, 'json');
    if (bool(args, 'dry-run')) {
      console.log(JSON.stringify(cfg, null, 2));
      return 0;
    }
    const { runTraining } = await import('../../train/run.js');
    const res = await runTraining(cfg, { resume: str(args, 'resume'), json, quiet: bool(args, 'quiet'),
      generateEval: async (model, c) => (await import('../../eval/run-eval.js')).trainingGenerateEval(model, c) });
    if (res.interrupted) {
      const msg = `interrupted at step ${res.steps}; checkpoint saved in ${res.lastCheckpoint}. Resume with: medlora train --config ${file} --output ${cfg.output_dir} --resume latest`;
      if (json) console.log(JSON.stringify({ event: 'interrupted', step: res.steps, checkpoint: res.lastCheckpoint }));
      console.error(msg);
      return 130;
    }
    if (res.steps === 0) throw new MedloraError('no update was run');
    return 0;
  },
};

// `medlora train`: LoRA fine-tuning from a YAML/JSON config (HF TrainingArguments / PEFT names), flags overriding the
// file, with a progress bar (or --json lines), metrics.jsonl, checkpoints, resume, Ctrl-C = save and stop, report.html.
import type { CommandSpec } from '../command.js';
import { bool, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';

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
    threads: { type: 'number', value: 'N', description: 'CPU threads for the engine (default: libtorch\'s choice; 1 is often fastest for tiny models on a busy machine)' },
    'nproc-per-node': { type: 'number', value: 'N', description: 'data-parallel training with N local ranks (spawned with torchrun\'s environment; see docs/DISTRIBUTED.md)' },
    'dist-timeout': { type: 'number', value: 'S', description: 'data parallel: seconds a rank waits for the others at a collective before failing (default 1800)' },
    'dist-backend': { type: 'string', value: 'gloo|nccl', description: 'data parallel: c10d backend (default gloo; nccl for CUDA ranks when the addon has it)' },
  },
  allowExtra: true,
  details: [
    'Any config key can be overridden: --training.max_steps 5, or the short form --max_steps 5 (every key whose name',
    'is unique: --learning_rate, --lora_alpha, --seed, ...). Lists: --target_modules q_proj,v_proj. null: --eval_steps null.',
    'The run directory gets config.resolved.json, metrics.jsonl, checkpoint-<step>/, adapter/ and report.html.',
    'Ctrl-C finishes the current update, saves a checkpoint and exits with code 130.',
    'Several processes (data parallel, c10d Gloo/NCCL): torchrun --nproc-per-node N --no-python node bin/medlora.js train ...',
    'or --nproc-per-node N; per_device_train_batch_size is per rank (the global batch is N times it).',
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
    const threads = args.options.threads;
    if (threads !== undefined) {
      if (!Number.isInteger(threads) || (threads as number) < 1) throw new MedloraError(`--threads must be a positive integer, got ${String(threads)}`);
      const { setNumThreads } = await import('../../tensor/index.js');
      setNumThreads(threads as number);
    }
    const nproc = args.options['nproc-per-node'];
    const dist = await import('../../train/distributed.js');
    if (nproc !== undefined) {
      if (!Number.isInteger(nproc) || (nproc as number) < 1) throw new MedloraError(`--nproc-per-node must be a positive integer, got ${String(nproc)}`);
      if (dist.distEnvFromProcess()) throw new MedloraError('--nproc-per-node: this process is already a rank (WORLD_SIZE is set); launch with either torchrun or --nproc-per-node');
      if ((nproc as number) > 1) {
        // the same command for every rank, without the launcher's flag
        const argv = process.argv.slice(2);
        const rest: string[] = [];
        for (let i = 0; i < argv.length; i++) {
          if (argv[i] === '--nproc-per-node') i++;
          else if (!argv[i]!.startsWith('--nproc-per-node=')) rest.push(argv[i]!);
        }
        return dist.launchLocal({ nproc: nproc as number, script: process.argv[1]!, args: rest,
          masterAddr: process.env.MASTER_ADDR || undefined, masterPort: Number(process.env.MASTER_PORT ?? 0) || undefined });
      }
    }
    const denv = dist.distEnvFromProcess();
    const timeout = args.options['dist-timeout'];
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0)) throw new MedloraError(`--dist-timeout must be a positive number of seconds, got ${String(timeout)}`);
    const backend = str(args, 'dist-backend');
    if (backend !== undefined && backend !== 'gloo' && backend !== 'nccl') throw new MedloraError(`--dist-backend must be gloo or nccl, got ${backend}`);
    const parallel = denv ? dist.initDataParallel(denv, { timeoutS: timeout as number | undefined, backend }) : undefined;
    const { runTraining } = await import('../../train/run.js');
    let res;
    try {
      res = await runTraining(cfg, { resume: str(args, 'resume'), json, quiet: bool(args, 'quiet'), parallel,
        generateEval: async (model, c) => (await import('../../eval/run-eval.js')).trainingGenerateEval(model, c) });
    } finally {
      parallel?.destroy();
    }
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

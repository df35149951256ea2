// `medlora export gguf`: a model (+ merged LoRA adapter) or an adapter alone as a GGUF file for llama.cpp / Ollama
// (glue over src/export/gguf-model.ts and src/export/ollama.ts).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { bool, str, type CommandSpec } from '../command.js';
import { MedloraError } from '../../util/errors.js';

function fmtBytes(n: number): string {
  return n >= 1e9
    ? `${(n / 1e9).toFixed(2)} GB`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(1)} MB`
      : `${(n / 1e3).toFixed(1)} kB`;
}

export const exportGgufCommand: CommandSpec = {
  name: 'export gguf',
  summary: 'Export a model (+ merged LoRA adapter), or an adapter alone, as a GGUF file for llama.cpp and Ollama',
  details: [
    'Llama, Mistral, Qwen2, GPT-2 and StableLM checkpoints (Llama-3 rope scaling included). Weights are written as --type; 1-D',
    'tensors and norms stay f32, and with q8_0 a matrix whose rows are not a multiple of 32 is stored f16 (listed).',
    'With --adapter the LoRA update (B A * alpha / r, or alpha / sqrt(r) with rsLoRA) is merged in float32 first. With',
    '--lora-only the adapter alone is written as a llama.cpp LoRA GGUF (llama-cli -m base.gguf --lora adapter.gguf);',
    "--model then names the base (default: the adapter's base_model_name_or_path when that folder exists).",
    '--ollama also writes a Modelfile next to the GGUF (ollama create NAME -f Modelfile).',
  ].join('\n'),
  options: {
    model: {
      type: 'string',
      value: 'DIR',
      description: 'Hugging Face model folder (config.json + safetensors + tokenizer)',
    },
    adapter: {
      type: 'string',
      value: 'DIR',
      description: 'PEFT LoRA adapter folder to merge in (or to export alone with --lora-only)',
    },
    tokenizer: { type: 'string', value: 'DIR', description: 'tokenizer folder (default: --model)' },
    out: { type: 'string', value: 'FILE.gguf', required: true, description: 'the GGUF file to write' },
    type: { type: 'string', value: 'f32|f16|bf16|q8_0', default: 'f16', description: 'weight type' },
    'lora-only': { type: 'boolean', description: 'write only the adapter (general.type=adapter) for llama.cpp --lora' },
    ollama: { type: 'boolean', description: 'also write an Ollama Modelfile next to the GGUF' },
    name: { type: 'string', value: 'NAME', description: 'general.name in the file (default: the folder name)' },
    json: { type: 'boolean', description: 'print the summary as one JSON document (the progress bar stays on stderr)' },
    quiet: { type: 'boolean', description: 'no progress bar' },
  },
  async run(args) {
    if (args.positionals.length)
      throw new MedloraError(`medlora export gguf: unexpected arguments ${args.positionals.join(' ')}`);
    const type = str(args, 'type') ?? 'f16';
    const { exportGguf, EXPORT_TYPES } = await import('../../export/gguf-model.js');
    if (!(EXPORT_TYPES as readonly string[]).includes(type))
      throw new MedloraError(`medlora export gguf: --type must be one of ${EXPORT_TYPES.join(', ')}, got "${type}"`);
    const loraOnly = bool(args, 'lora-only');
    const adapter = str(args, 'adapter');
    const ollama = bool(args, 'ollama');
    const json = bool(args, 'json');
    if (loraOnly && !adapter) throw new MedloraError('medlora export gguf: --lora-only needs --adapter DIR');
    if (loraOnly && ollama)
      throw new MedloraError(
        'medlora export gguf: --ollama writes a Modelfile for a full model; export without --lora-only',
      );
    let model = str(args, 'model');
    if (!model && loraOnly) {
      const cfg = join(adapter!, 'adapter_config.json');
      const base = existsSync(cfg)
        ? (JSON.parse(readFileSync(cfg, 'utf8')) as { base_model_name_or_path?: unknown }).base_model_name_or_path
        : undefined;
      if (typeof base === 'string' && existsSync(join(base, 'config.json'))) model = base;
      else
        throw new MedloraError(
          `medlora export gguf: --lora-only needs --model DIR (the base model; ${cfg} base_model_name_or_path ${JSON.stringify(base ?? null)} is not a local model folder)`,
        );
    }
    if (!model) throw new MedloraError('medlora export gguf: --model DIR is required');
    const out = str(args, 'out')!;
    mkdirSync(dirname(out), { recursive: true });
    const { Progress } = await import('../../util/progress.js');
    let bar: InstanceType<typeof Progress> | undefined;
    const r = exportGguf({
      model,
      out,
      type: type as (typeof EXPORT_TYPES)[number],
      loraOnly,
      ...(adapter ? { adapter } : {}),
      ...(str(args, 'tokenizer') ? { tokenizer: str(args, 'tokenizer')! } : {}),
      ...(str(args, 'name') ? { name: str(args, 'name')! } : {}),
      onTensor: (done, total) => {
        (bar ??= new Progress({ total, label: 'gguf', unit: 'tensor', quiet: bool(args, 'quiet') })).update(done);
      },
    });
    bar?.end();
    for (const w of r.warnings) console.warn(`warning: ${w}`);
    let modelfile: { path: string; template: string; warning?: string; stops: string[] } | undefined;
    if (ollama && r.gguf) {
      const { buildModelfile } = await import('../../export/ollama.js');
      const mf = buildModelfile({
        gguf: `./${basename(out)}`,
        tokenizer: r.gguf.tokenizer,
        modelDir: model,
        ...(r.contextLength ? { contextLength: r.contextLength } : {}),
      });
      const path = join(dirname(out), 'Modelfile');
      writeFileSync(path, mf.text);
      modelfile = { path, template: mf.template, ...(mf.warning ? { warning: mf.warning } : {}), stops: mf.stops };
    }
    if (json) {
      console.log(
        JSON.stringify({
          out,
          kind: r.kind,
          arch: r.arch,
          type: r.type,
          tensors: r.tensors,
          bytes: r.bytes,
          by_type: r.byType,
          fallbacks: r.fallbacks,
          lora_modules: r.loraModules,
          context_length: r.contextLength ?? null,
          vocab: r.vocab ?? null,
          notes: r.notes,
          warnings: r.warnings,
          modelfile: modelfile ?? null,
        }),
      );
      return 0;
    }
    const types = Object.entries(r.byType)
      .map(([t, n]) => `${n} ${t}`)
      .join(', ');
    console.log(
      `wrote ${out}: ${r.kind === 'adapter' ? 'LoRA adapter' : 'model'} (arch ${r.arch}, type ${r.type}), ${r.tensors} tensors (${types}), ${fmtBytes(r.bytes)}`,
    );
    if (r.vocab)
      console.log(
        `tokenizer: ${r.vocab.model}${r.vocab.pre ? ` (pre-tokenizer ${r.vocab.pre})` : ''}, ${r.vocab.tokens} tokens`,
      );
    if (r.loraModules.length)
      console.log(`${r.kind === 'adapter' ? 'LoRA modules' : 'merged LoRA modules'}: ${r.loraModules.length}`);
    for (const f of r.fallbacks) console.log(`note: ${f}`);
    for (const n of r.notes) console.log(`note: ${n}`);
    if (modelfile) {
      console.log(
        `wrote ${modelfile.path} (TEMPLATE ${modelfile.template}; stop ${modelfile.stops.map((s) => JSON.stringify(s)).join(', ') || 'none'})`,
      );
      if (modelfile.warning) console.warn(`warning: ${modelfile.warning}`);
    }
    return 0;
  },
};

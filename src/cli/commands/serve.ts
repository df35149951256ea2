// `medlora serve`: load a model (+ adapter) once and serve extraction over HTTP (glue over src/serve/server.ts).
import type { CommandSpec } from '../command.js';
import { bool, list, num, str } from '../command.js';
import { GENERATION_OPTIONS } from './eval.js';
import { MedloraError, prefixed } from '../../util/errors.js';
import type { StructuredTask } from '../../infer/parse.js';
import { deviceFromFlag } from '../device.js';

/** A display name for a folder: its base name, or its parent's when it is the conventional "adapter" folder. */
async function folderName(dir: string): Promise<string> {
  const { basename, dirname, resolve } = await import('node:path');
  const abs = resolve(dir);
  return basename(abs) === 'adapter' ? `${basename(dirname(abs))}/adapter` : basename(abs);
}

export const serveCommand: CommandSpec = {
  name: 'serve',
  summary: 'Serve extraction and an OpenAI-compatible API over HTTP, for a base model and any number of adapters',
  details: [
    'Loads the model (+ adapter) once, then answers:',
    '  POST /v1/extract  {"task": T, "text": "..."} or {"task": T, "texts": ["...", ...]}, optionally with',
    '                    "max_new_tokens" (<= --max-new-tokens), "temperature", "top_k", "top_p", "repetition_penalty",',
    '                    "seed", "constrain" (default true: answers always parse). Answer: {"results": [{"task", "input",',
    '                    "result" (the task\'s structured answer), "entities": [{"text", "role", "spans": [[start, end], ...]}],',
    '                    "raw" (model text), "parsed", "unparsed", "finish_reason", "truncated"}], "model", "adapter", "elapsed_ms",',
    '                    "batch"}; finish_reason eos | length | max_positions (the model\'s position limit), truncated',
    '                    true for the last two',
    '                    Spans are Unicode code-point offsets of the input, end exclusive (as medlora extract).',
    '  GET /v1/tasks     the served tasks with their instruction, output JSON Schema and entity roles',
    '  GET /health       model, adapter, models (each with own_weights_mb: the weights it holds itself; an adapter',
    '                    over the shared base holds only its own tensors), engine, device, uptime, request counters,',
    '                    limits',
    '  POST /v1/chat/completions, POST /v1/completions, GET /v1/models: the OpenAI API shape (the openai clients work',
    '                    with base URL http://HOST:PORT/v1): messages rendered with the chat template, max_tokens,',
    '                    temperature (default 1), top_p, seed, stop, n = 1, stream (server-sent events, data: [DONE]),',
    '                    stream_options.include_usage, response_format (json_object / json_schema, enforced by the',
    '                    constrained decoder), usage counts. Unsupported parameters are a 400 naming them.',
    'Models: --adapter NAME=DIR (repeatable) serves each adapter under NAME and the base under its folder name',
    '(--base-name); a request picks one with "model" (default on /v1/extract: the first adapter). The base weights are',
    'loaded once and shared by every adapter (each adapter adds only its own tensors, of any method: LoRA, DoRA,',
    'Adapter-V2; nothing is merged into the base); batches never mix models. A plain --adapter DIR serves that adapter',
    'as the one model (as before). --load-in-4bit: the base linears in NF4 (as QLoRA training), shared alike.',
    'Security: 127.0.0.1 unless --host; --api-key-env VAR or --api-key-file FILE makes every /v1 route require',
    '"Authorization: Bearer <key>" (compared in constant time; the web page has a key field for it). There is no',
    'option taking the key itself: a command line is visible to every user of the machine (ps, /proc/PID/cmdline)',
    'and kept in shell history. Limits below answer 413 (body, prompt) or 429 (--max-concurrent).',
    '  GET /             a web page: pick a task, paste text, see the table, highlighted spans and raw JSON',
    '                    (/?task=T&text=...&run=1 pre-fills the form and submits it)',
    "The prompt style, max length, instructions, dtype and default tasks come from the adapter's training contract",
    '(medlora_contract.json, written by medlora train); a flag that contradicts it wins with a warning.',
    'Queueing: generation runs one batch at a time. Greedy requests of the same task and settings that wait together',
    'share a batch of at most --max-batch texts (the oldest request always goes first); sampled requests (temperature > 0)',
    'run alone so their seed gives the same answer whatever else is queued. While a batch runs, other requests wait.',
    'Errors are JSON {"error": {"status", "message", "field"}}: 400 bad JSON / unknown task / missing or too long text,',
    '413 body over --max-body-bytes, 404 unknown route, 405 wrong method, 500 otherwise (the server keeps running).',
    'SIGINT / SIGTERM: stop accepting, finish every accepted request, exit 0. --json prints JSON lines (listening,',
    'one per request, stopped) on stdout; otherwise one line per request goes to stderr (--quiet: none).',
  ].join('\n'),
  options: {
    model: GENERATION_OPTIONS.model!,
    adapter: {
      type: 'string',
      value: '[NAME=]DIR',
      multiple: true,
      description:
        'adapter folder (LoRA, DoRA, Adapter-V2); NAME=DIR (repeatable) serves several over one shared base, picked by "model"',
    },
    'base-name': {
      type: 'string',
      value: 'NAME',
      description: 'the base model\'s name in "model" fields (default: its folder name)',
    },
    'chat-template': {
      type: 'string',
      value: 'FILE',
      description: "a Jinja chat template for /v1/chat/completions (default: the tokenizer's own)",
    },
    'api-key-env': {
      type: 'string',
      value: 'VAR',
      description:
        'require "Authorization: Bearer $VAR" on /v1 routes (the key is read from this environment variable)',
    },
    'api-key-file': {
      type: 'string',
      value: 'FILE',
      description:
        'require "Authorization: Bearer <key>" on /v1 routes, the key being the first line of FILE (keep it chmod 600)',
    },
    'load-in-4bit': {
      type: 'boolean',
      description:
        "NF4-quantize the base's linear layers (as QLoRA training does; lm_head stays full precision) before the adapters go on",
    },
    'max-concurrent': {
      type: 'number',
      value: 'N',
      default: 64,
      description: 'most generating requests accepted at once (more: 429)',
    },
    'max-prompt-tokens': {
      type: 'number',
      value: 'N',
      default: 4096,
      description: 'most prompt tokens of a completion request',
    },
    tokenizer: GENERATION_OPTIONS.tokenizer!,
    task: {
      type: 'string',
      value: 'TASK',
      multiple: true,
      description:
        "serve only this task (repeatable; default: the adapter's training contract's tasks, else every structured task)",
    },
    host: {
      type: 'string',
      value: 'HOST',
      default: '127.0.0.1',
      description: 'address to listen on (0.0.0.0 exposes the server to the network)',
    },
    port: {
      type: 'number',
      value: 'N',
      default: 8080,
      description: 'port (0 = any free port; the chosen one is printed)',
    },
    'max-batch': { type: 'number', value: 'N', default: 8, description: 'most texts generated together in one batch' },
    'max-new-tokens': {
      type: 'number',
      value: 'N',
      default: 256,
      description: 'most (and default) tokens generated per answer',
    },
    'max-texts': { type: 'number', value: 'N', default: 64, description: 'most texts in one request' },
    'max-input-chars': { type: 'number', value: 'N', default: 20000, description: 'most characters in one text' },
    'max-body-bytes': {
      type: 'number',
      value: 'N',
      default: 1048576,
      description: 'largest request body (larger: 413)',
    },
    prompt: GENERATION_OPTIONS.prompt!,
    'max-length': GENERATION_OPTIONS['max-length']!,
    dtype: GENERATION_OPTIONS.dtype!,
    device: GENERATION_OPTIONS.device!,
    threads: GENERATION_OPTIONS.threads!,
    json: { type: 'boolean', description: 'JSON lines on stdout (listening, requests, stopped)' },
    quiet: { type: 'boolean', description: 'no per-request lines' },
  },
  async run(args) {
    // checked before anything loads
    const device = await deviceFromFlag(args);
    const { structuredTask } = await import('../../infer/generate-answers.js');
    const { loadExtractor } = await import('../../infer/load-extractor.js');
    const { createServer } = await import('../../serve/server.js');
    const { explicitPrompt, CONTRACT_FLAGS } = await import('./eval.js');
    const explicit = explicitPrompt(args);
    let tasks = [...new Set(list(args, 'task').map((t) => structuredTask(t)))];
    const json = bool(args, 'json');
    const quiet = bool(args, 'quiet');
    const t0 = Date.now();
    const tokDir = str(args, 'tokenizer');
    const dtype = str(args, 'dtype');
    const threads = num(args, 'threads');
    const adapters = list(args, 'adapter');
    const named = adapters
      .filter((a) => /^[^=/\\]+=/.test(a))
      .map((a) => ({ name: a.slice(0, a.indexOf('=')), dir: a.slice(a.indexOf('=') + 1) }));
    if (named.length && named.length !== adapters.length)
      throw new MedloraError('medlora serve: give every --adapter as NAME=DIR, or a single --adapter DIR');
    if (!named.length && adapters.length > 1)
      throw new MedloraError('medlora serve: several adapters need names: --adapter NAME=DIR (repeatable)');
    const adapter = named.length ? undefined : adapters[0];
    const in4bit = bool(args, 'load-in-4bit');
    let apiKey: string | undefined;
    const keyVar = str(args, 'api-key-env');
    const keyFile = str(args, 'api-key-file');
    if (keyVar !== undefined && keyFile !== undefined)
      throw new MedloraError('medlora serve: give --api-key-env or --api-key-file, not both');
    if (keyVar !== undefined) {
      apiKey = process.env[keyVar];
      if (!apiKey)
        throw new MedloraError(`medlora serve: --api-key-env ${keyVar}: the environment variable is not set or empty`);
    }
    if (keyFile !== undefined) {
      const { readFileSync, statSync } = await import('node:fs');
      let text: string;
      try {
        text = readFileSync(keyFile, 'utf8');
      } catch (e) {
        throw new MedloraError(`medlora serve: --api-key-file ${keyFile}: cannot read it (${(e as Error).message})`);
      }
      apiKey = text.split(/\r?\n/)[0]!.trim();
      if (!apiKey) throw new MedloraError(`medlora serve: --api-key-file ${keyFile}: the first line is empty`);
      if ((statSync(keyFile).mode & 0o077) !== 0)
        console.error(
          `warning: --api-key-file ${keyFile} can be read by other users of this machine (chmod 600 ${keyFile})`,
        );
    }
    const templateFile = str(args, 'chat-template');
    const chatTemplate =
      templateFile !== undefined ? (await import('node:fs')).readFileSync(templateFile, 'utf8') : undefined;
    const { loadTokenizer } = await import('../../tokenize/tokenizer.js');
    const { loadAdapterShared } = await import('../../adapt/methods/index.js');
    const { isFloatDType } = await import('../../tensor/index.js');
    const { inferenceSettings } = await import('../../infer/load-extractor.js');
    const loaded = loadExtractor({
      model: str(args, 'model')!,
      where: 'medlora serve',
      device,
      ...explicit,
      fieldNames: CONTRACT_FLAGS,
      ...(tasks.length ? { tasks } : {}),
      ...(tokDir !== undefined ? { tokenizer: tokDir } : {}),
      ...(dtype !== undefined ? { dtype } : {}),
      ...(threads !== undefined ? { threads } : {}),
      // 4-bit: the base linears are quantized while loading (as training's QLoRA holds them), lm_head kept
      ...(in4bit ? { loadIn4bit: true } : {}),
      ...(adapter !== undefined ? { adapter } : {}),
    });
    const { model, modelDir, settings, warnings } = loaded;
    const adapterDir = loaded.adapterDir;
    for (const w of warnings) console.error(`warning: ${w}`);
    if (loaded.quantized) {
      const { formatBytes } = await import('../../adapt/nf4-linear.js');
      const q = loaded.quantized;
      console.error(
        `medlora serve: base linears quantized to NF4: ${q.layers.length} layers, ${formatBytes(q.bytesBefore)} -> ${formatBytes(q.bytesAfter)}`,
      );
    }
    const contractTasks = (t: string[]): StructuredTask[] =>
      t.filter((x) => {
        try {
          structuredTask(x);
          return true;
        } catch {
          return false;
        }
      }) as StructuredTask[];
    // without --task: the tasks the adapter was trained on (its contract), else every structured task
    const explicitTasks = tasks.length > 0;
    if (!tasks.length) tasks = contractTasks(settings.contract_tasks);
    const maxLength = settings.max_length;
    const tok = chatTemplate !== undefined ? loadTokenizer(tokDir ?? modelDir, { chatTemplate }) : loaded.tok;
    // named adapters: each over the ONE loaded base (its weights shared, not copied: src/model/share.ts) with its
    // own wrappers, prompted as its own training contract says
    const extra: import('../../serve/models.js').ServedModel[] = [];
    const disposeAll = (): void => {
      for (const e of extra) e.model.dispose();
      model.dispose();
    };
    const baseDType = model.parameters().find((t) => isFloatDType(t.dtype))?.dtype;
    try {
      for (const a of named) {
        const { settings: s } = inferenceSettings(a.dir, {
          ...explicit,
          fieldNames: CONTRACT_FLAGS,
          ...(explicitTasks ? { tasks } : {}),
        });
        for (const w of s.warnings) console.error(`warning: --adapter ${a.name}: ${w}`);
        if (s.compute_dtype && baseDType && s.compute_dtype !== baseDType && dtype === undefined)
          console.error(
            `warning: --adapter ${a.name}: its training contract computes in ${s.compute_dtype}, the shared base is loaded in ${baseDType} (--dtype sets the base's)`,
          );
        const own = explicitTasks ? tasks : contractTasks(s.contract_tasks);
        const { model: m } = loadAdapterShared(model, a.dir);
        extra.push({
          name: a.name,
          model: m,
          tok,
          adapterDir: a.dir,
          promptStyle: s.prompt_style,
          ...(s.max_length !== undefined ? { maxLength: s.max_length } : {}),
          instructions: s.instructions,
          ...(own.length ? { tasks: own } : {}),
        });
      }
    } catch (e) {
      const failed = named[extra.length]?.name ?? '';
      disposeAll();
      const prefix = `medlora serve: --adapter ${failed}: `;
      throw e instanceof MedloraError ? prefixed(prefix, e) : new MedloraError(`${prefix}${(e as Error).message}`);
    }
    const baseName =
      str(args, 'base-name') ??
      (named.length
        ? (await import('node:path')).basename((await import('node:path')).resolve(modelDir))
        : await folderName(modelDir));
    let handle;
    try {
      handle = await createServer({
        model: named.length ? extra[0]!.model : model,
        tok,
        modelName: named.length ? named[0]!.name : baseName,
        adapterName: named.length ? named[0]!.dir : adapterDir ? await folderName(adapterDir) : null,
        // the first named adapter is the default model; the base is served under its own name beside the others
        extraModels: named.length ? [{ name: baseName, model, tok, adapterDir: null }, ...extra.slice(1)] : [],
        // served tasks: --task, else every named adapter's contract tasks together, else the adapter's, else all
        ...(named.length
          ? explicitTasks || extra.some((e) => !e.tasks)
            ? tasks.length
              ? { tasks }
              : {}
            : { tasks: [...new Set(extra.flatMap((e) => e.tasks!))] }
          : tasks.length
            ? { tasks }
            : {}),
        ...(named.length && extra[0]!.tasks ? { modelTasks: extra[0]!.tasks } : {}),
        host: str(args, 'host')!,
        port: num(args, 'port')!,
        maxBatch: num(args, 'max-batch')!,
        maxNewTokens: num(args, 'max-new-tokens')!,
        maxTexts: num(args, 'max-texts')!,
        maxInputChars: num(args, 'max-input-chars')!,
        maxBodyBytes: num(args, 'max-body-bytes')!,
        maxConcurrent: num(args, 'max-concurrent')!,
        maxPromptTokens: num(args, 'max-prompt-tokens')!,
        ...(apiKey !== undefined ? { apiKey } : {}),
        ...(named.length
          ? {
              promptStyle: extra[0]!.promptStyle!,
              ...(extra[0]!.maxLength !== undefined ? { maxLength: extra[0]!.maxLength } : {}),
              instructions: extra[0]!.instructions!,
            }
          : {
              promptStyle: settings.prompt_style,
              ...(maxLength !== undefined ? { maxLength } : {}),
              instructions: settings.instructions,
            }),
        onRequest: (e) => {
          if (json) console.log(JSON.stringify({ event: 'request', ...e }));
          else if (!quiet)
            console.error(
              `${e.method} ${e.path} ${e.status} ${e.ms} ms${e.model ? ` [${e.model}]` : ''}${e.texts ? ` (${e.texts} texts, batch of ${e.batch?.texts})` : ''}${e.completion_tokens !== undefined ? ` (${e.prompt_tokens}+${e.completion_tokens} tokens)` : ''}${e.error ? `: ${e.error}` : ''}`,
            );
        },
      });
    } catch (e) {
      disposeAll();
      throw e;
    }
    const h = handle;
    const loadS = (Date.now() - t0) / 1000;
    if (json)
      console.log(
        JSON.stringify({
          event: 'listening',
          url: h.url,
          host: h.host,
          port: h.port,
          model: modelDir,
          adapter: adapterDir ?? named[0]?.dir ?? null,
          models: [
            ...(named.length ? [] : [baseName]),
            ...named.map((a) => a.name),
            ...(named.length ? [baseName] : []),
          ],
          device,
          load_s: loadS,
        }),
      );
    else
      console.error(
        `medlora serve: listening on ${h.url} (model ${modelDir}${adapterDir ? `, adapter ${adapterDir}` : ''}${named.length ? `; models ${[...named.map((a) => a.name), baseName].join(', ')}` : ''}; on ${device}; loaded in ${loadS.toFixed(1)} s). Ctrl-C to stop.`,
      );
    // run until a signal; then finish accepted requests and exit 0
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    if (!json)
      console.error(`medlora serve: ${signal}: finishing ${h.stats().queued} queued request(s), then stopping`);
    await h.close();
    disposeAll();
    if (json) console.log(JSON.stringify({ event: 'stopped', signal, ...h.stats() }));
    else console.error(`medlora serve: stopped after ${h.stats().requests} requests`);
    return 0;
  },
};

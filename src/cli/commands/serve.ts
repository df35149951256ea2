// `medlora serve`: load a model (+ adapter) once and serve extraction over HTTP (glue over src/serve/server.ts).
import type { CommandSpec } from '../command.js';
import { bool, list, num, str } from '../command.js';
import { GENERATION_OPTIONS } from './eval.js';

/** A display name for a folder: its base name, or its parent's when it is the conventional "adapter" folder. */
async function folderName(dir: string): Promise<string> {
  const { basename, dirname, resolve } = await import('node:path');
  const abs = resolve(dir);
  return basename(abs) === 'adapter' ? `${basename(dirname(abs))}/adapter` : basename(abs);
}

export const serveCommand: CommandSpec = {
  name: 'serve',
  summary: 'Serve extraction over HTTP: POST /v1/extract, GET /v1/tasks, GET /health and a web page at /',
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
    '  GET /health       model, adapter, engine, uptime, request counters, limits',
    '  GET /             a web page: pick a task, paste text, see the table, highlighted spans and raw JSON',
    '                    (/?task=T&text=...&run=1 pre-fills the form and submits it)',
    'The prompt style, max length, instructions, dtype and default tasks come from the adapter\'s training contract',
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
    adapter: GENERATION_OPTIONS.adapter!,
    tokenizer: GENERATION_OPTIONS.tokenizer!,
    task: { type: 'string', value: 'TASK', multiple: true, description: 'serve only this task (repeatable; default: the adapter\'s training contract\'s tasks, else every structured task)' },
    host: { type: 'string', value: 'HOST', default: '127.0.0.1', description: 'address to listen on (0.0.0.0 exposes the server to the network)' },
    port: { type: 'number', value: 'N', default: 8080, description: 'port (0 = any free port; the chosen one is printed)' },
    'max-batch': { type: 'number', value: 'N', default: 8, description: 'most texts generated together in one batch' },
    'max-new-tokens': { type: 'number', value: 'N', default: 256, description: 'most (and default) tokens generated per answer' },
    'max-texts': { type: 'number', value: 'N', default: 64, description: 'most texts in one request' },
    'max-input-chars': { type: 'number', value: 'N', default: 20000, description: 'most characters in one text' },
    'max-body-bytes': { type: 'number', value: 'N', default: 1048576, description: 'largest request body (larger: 413)' },
    prompt: GENERATION_OPTIONS.prompt!,
    'max-length': GENERATION_OPTIONS['max-length']!,
    dtype: GENERATION_OPTIONS.dtype!,
    threads: GENERATION_OPTIONS.threads!,
    json: { type: 'boolean', description: 'JSON lines on stdout (listening, requests, stopped)' },
    quiet: { type: 'boolean', description: 'no per-request lines' },
  },
  async run(args) {
    const { structuredTask } = await import('../../eval/run-eval.js');
    const { loadExtractor } = await import('../../eval/load-extractor.js');
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
    const adapter = str(args, 'adapter');
    const { model, tok, modelDir, adapterDir, settings, warnings } = loadExtractor({
      model: str(args, 'model')!, where: 'medlora serve', ...explicit, fieldNames: CONTRACT_FLAGS, ...(tasks.length ? { tasks } : {}),
      ...(tokDir !== undefined ? { tokenizer: tokDir } : {}), ...(dtype !== undefined ? { dtype } : {}),
      ...(threads !== undefined ? { threads } : {}), ...(adapter !== undefined ? { adapter } : {}),
    });
    for (const w of warnings) console.error(`warning: ${w}`);
    // without --task: the tasks the adapter was trained on (its contract), else every structured task
    if (!tasks.length) tasks = settings.contract_tasks.filter((t) => { try { structuredTask(t); return true; } catch { return false; } }) as typeof tasks;
    const maxLength = settings.max_length;
    let handle;
    try {
      handle = await createServer({
        model, tok, modelName: await folderName(modelDir), adapterName: adapterDir ? await folderName(adapterDir) : null,
        ...(tasks.length ? { tasks } : {}),
        host: str(args, 'host')!, port: num(args, 'port')!, maxBatch: num(args, 'max-batch')!, maxNewTokens: num(args, 'max-new-tokens')!,
        maxTexts: num(args, 'max-texts')!, maxInputChars: num(args, 'max-input-chars')!, maxBodyBytes: num(args, 'max-body-bytes')!,
        promptStyle: settings.prompt_style, ...(maxLength !== undefined ? { maxLength } : {}), instructions: settings.instructions,
        onRequest: (e) => {
          if (json) console.log(JSON.stringify({ event: 'request', ...e }));
          else if (!quiet) console.error(`${e.method} ${e.path} ${e.status} ${e.ms} ms${e.texts ? ` (${e.texts} texts, batch of ${e.batch?.texts})` : ''}${e.error ? `: ${e.error}` : ''}`);
        },
      });
    } catch (e) {
      model.dispose();
      throw e;
    }
    const h = handle;
    const loadS = (Date.now() - t0) / 1000;
    if (json) console.log(JSON.stringify({ event: 'listening', url: h.url, host: h.host, port: h.port, model: modelDir, adapter: adapterDir, load_s: loadS }));
    else console.error(`medlora serve: listening on ${h.url} (model ${modelDir}${adapterDir ? `, adapter ${adapterDir}` : ''}; loaded in ${loadS.toFixed(1)} s). Ctrl-C to stop.`);
    // run until a signal; then finish accepted requests and exit 0
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    if (!json) console.error(`medlora serve: ${signal}: finishing ${h.stats().queued} queued request(s), then stopping`);
    await h.close();
    model.dispose();
    if (json) console.log(JSON.stringify({ event: 'stopped', signal, ...h.stats() }));
    else console.error(`medlora serve: stopped after ${h.stats().requests} requests`);
    return 0;
  },
};

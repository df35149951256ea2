// `medlora data synth`: adverse-event report records through any OpenAI-compatible endpoint (glue over
// src/data/synth/synth.ts).
import { bool, num, str, type CommandSpec } from '../command.js';
import { MedloraError } from '../../util/errors.js';

export const dataSynth: CommandSpec = {
  name: 'data synth',
  summary:
    'generate adverse-event report records from a prompt template and drug information through an OpenAI-compatible API',
  details: [
    "The template has the slots [DRUG NAME] and [DRUG SIDE EFFECTS] (the adverse-event recipe's prompt-template.txt);",
    '--drugs is a JSONL file of {"drug", "info"} lines or a folder of text files named after their drug. Each request',
    'asks POST {endpoint}/chat/completions with response_format json_schema {"reports": [{input, output: {drug_name,',
    'adverse_events}}]} (drug_name pinned to the drug); answers are validated, de-duplicated and written to --out as a',
    'JSON array of {input, output, provenance: {template_sha256, endpoint, model, seed, request, drug}} that',
    '`medlora data import ade-email` reads. Answered requests are kept in an append-only journal (--journal, default',
    'OUT.journal.jsonl): run the same command again after an interruption and only the missing requests are sent.',
  ].join('\n'),
  options: {
    template: {
      type: 'string',
      value: 'FILE',
      description: 'prompt template with [DRUG NAME] and [DRUG SIDE EFFECTS]',
      required: true,
    },
    drugs: {
      type: 'string',
      value: 'PATH',
      description: 'drug information: JSONL {"drug", "info"} or a folder of <drug>.txt files',
      required: true,
    },
    endpoint: {
      type: 'string',
      value: 'URL',
      description: 'API base URL, e.g. http://127.0.0.1:8080/v1 or https://api.openai.com/v1',
      required: true,
    },
    model: { type: 'string', value: 'NAME', description: 'the "model" of every request', required: true },
    'api-key-env': {
      type: 'string',
      value: 'VAR',
      default: 'OPENAI_API_KEY',
      description: 'environment variable holding the API key (unset: no Authorization header)',
    },
    out: { type: 'string', value: 'FILE.json', description: 'the records (a JSON array)', required: true },
    journal: { type: 'string', value: 'FILE', description: 'the resume journal (default: OUT.journal.jsonl)' },
    'per-drug': { type: 'number', value: 'N', default: 1, description: 'requests per drug' },
    reports: { type: 'number', value: 'N', default: 10, description: 'most reports asked for per request' },
    seed: {
      type: 'number',
      value: 'N',
      default: 0,
      description: 'seed of the first request (request i uses seed + i)',
    },
    temperature: { type: 'number', value: 'T', description: "sampling temperature (default: the endpoint's)" },
    'max-tokens': { type: 'number', value: 'N', description: "max_tokens per request (default: the endpoint's)" },
    concurrency: { type: 'number', value: 'N', default: 4, description: 'requests in flight at once' },
    retries: { type: 'number', value: 'N', default: 5, description: 'retries of a failed request (429, 5xx, network)' },
    'backoff-ms': {
      type: 'number',
      value: 'MS',
      default: 500,
      description: 'first retry delay; doubles each retry (capped at 30 s)',
    },
    json: { type: 'boolean', description: 'print the summary as JSON' },
    quiet: { type: 'boolean', description: 'no progress bar' },
  },
  async run(args) {
    if (args.positionals.length) throw new MedloraError(`unexpected arguments: ${args.positionals.join(' ')}`);
    const { readTemplate, readDrugs } = await import('../../data/synth/inputs.js');
    const { synthesize } = await import('../../data/synth/synth.js');
    const { Progress } = await import('../../util/progress.js');
    const out = str(args, 'out')!;
    const keyVar = str(args, 'api-key-env')!;
    const apiKey = process.env[keyVar];
    const json = bool(args, 'json');
    const pos = (k: string): number => {
      const v = num(args, k)!;
      if (!Number.isInteger(v) || v < 1) throw new MedloraError(`--${k} must be a positive integer, got ${v}`);
      return v;
    };
    const retries = num(args, 'retries')!;
    if (!Number.isInteger(retries) || retries < 0)
      throw new MedloraError(`--retries must be a non-negative integer, got ${retries}`);
    const temperature = num(args, 'temperature');
    const maxTokens = num(args, 'max-tokens');
    if (maxTokens !== undefined) pos('max-tokens');
    const drugs = readDrugs(str(args, 'drugs')!);
    let bar: InstanceType<typeof Progress> | undefined;
    const s = await synthesize({
      template: readTemplate(str(args, 'template')!),
      drugs,
      endpoint: str(args, 'endpoint')!,
      model: str(args, 'model')!,
      ...(apiKey ? { apiKey } : {}),
      out,
      journal: str(args, 'journal') ?? `${out}.journal.jsonl`,
      perDrug: pos('per-drug'),
      reportsPerRequest: pos('reports'),
      seed: num(args, 'seed')!,
      concurrency: pos('concurrency'),
      retries,
      backoffMs: num(args, 'backoff-ms')!,
      ...(temperature !== undefined ? { temperature } : {}),
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      onProgress: (done, total) => {
        bar ??= new Progress({ total, label: 'synth', unit: 'requests', quiet: bool(args, 'quiet') || json });
        bar.update(done);
      },
    });
    if (json) {
      console.log(JSON.stringify(s));
      return 0;
    }
    console.log(
      `synth: ${s.records} records from ${s.requests} requests (${s.sent} sent, ${s.resumed} from the journal, ${s.retries} retries; ${s.invalid} invalid and ${s.duplicates} duplicate reports dropped) -> ${s.out}`,
    );
    return 0;
  },
};

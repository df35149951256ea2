// POST /v1/extract: validated (src/serve/request.ts), run through the shared queue on the model the request names
// (`model`, default: the server's default entry), answered with structured results and entity spans.
import type { IncomingMessage } from 'node:http';
import { extract, type ExtractResult } from '../infer/extract.js';
import type { StructuredTask } from '../infer/parse.js';
import { MedloraError } from '../util/errors.js';
import { HttpError } from './http-error.js';
import { readJson } from './http.js';
import type { ModelRegistry, ServedModel } from './models.js';
import type { BatchInfo } from './queue.js';
import { batchKey, parseExtractRequest, type ExtractRequest, type RequestLimits } from './request.js';

/** One result of POST /v1/extract (documented in the serve command's help). */
export interface ServedResult {
  task: StructuredTask;
  input: string;
  result: unknown;
  entities: Array<{ text: string; role: string; spans: Array<[number, number]> }>;
  raw: string;
  parsed: boolean;
  unparsed: string[];
  /** eos, length (max_new_tokens reached) or max_positions (the model's position limit reached) */
  finish_reason: string;
  /** the answer was cut (finish_reason length or max_positions) rather than ended by the model */
  truncated: boolean;
}

export interface ExtractJob {
  entry: ServedModel;
  req: ExtractRequest;
}

function served(r: ExtractResult, input: string): ServedResult {
  return {
    task: r.task,
    input,
    result: r.result,
    entities: r.entities.map((e) => ({ text: e.text, role: e.role, spans: e.occurrences })),
    raw: r.output,
    parsed: r.unparsed.length === 0,
    unparsed: r.unparsed,
    finish_reason: r.finish_reason,
    truncated: r.truncated,
  };
}

/** Run extraction jobs that share a batching key (one entry, one task, equal settings). */
export function runExtract(jobs: ExtractJob[], maxBatch: number): ServedResult[][] {
  const { entry, req: first } = jobs[0]!;
  const inputs = jobs.flatMap((j, ji) => j.req.texts.map((text, ti) => ({ id: `${ji}:${ti}`, text })));
  const { results } = extract(entry.model, entry.tok, first.task, inputs, {
    ...first.settings,
    batchSize: maxBatch,
    promptStyle: entry.promptStyle ?? 'alpaca',
    ...(entry.maxLength !== undefined ? { maxLength: entry.maxLength } : {}),
    ...(entry.instructions ? { instructions: entry.instructions } : {}),
  });
  let k = 0;
  return jobs.map((j) => j.req.texts.map((text) => served(results[k++]!, text)));
}

export interface ExtractContext {
  models: ModelRegistry;
  /** limits with the server's tasks (an entry's own tasks replace them) */
  limits: RequestLimits;
  maxBodyBytes: number;
  submit(key: string | null, size: number, job: ExtractJob): Promise<{ result: ServedResult[]; batch: BatchInfo }>;
}

export async function handleExtract(
  ctx: ExtractContext,
  req: IncomingMessage,
): Promise<{ body: unknown; texts: number; batch: BatchInfo }> {
  const body = await readJson(req, ctx.maxBodyBytes);
  const t0 = performance.now();
  const entry = ctx.models.get((body as Record<string, unknown> | null)?.model);
  const r = parseExtractRequest(body, { ...ctx.limits, ...(entry.tasks?.length ? { tasks: entry.tasks } : {}) });
  r.model = entry.name;
  let out: { result: ServedResult[]; batch: BatchInfo };
  try {
    out = await ctx.submit(batchKey(r), r.texts.length, { entry, req: r });
  } catch (e) {
    // errors from the request's own settings (e.g. max_new_tokens below a constrained answer's minimum) are the
    // client's; the generation layer names them by their snake_case keys, which are the request's fields
    if (e instanceof MedloraError) throw new HttpError(400, e.message, e.field);
    throw e;
  }
  return {
    body: {
      results: out.result,
      model: entry.name,
      adapter: entry.adapterDir,
      elapsed_ms: Math.round((performance.now() - t0) * 10) / 10,
      batch: out.batch,
    },
    texts: r.texts.length,
    batch: out.batch,
  };
}

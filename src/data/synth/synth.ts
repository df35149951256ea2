// `medlora data synth`: adverse-event report records generated through any OpenAI-compatible endpoint
// (POST {endpoint}/chat/completions) from a prompt template and drug information, as the adverse-event recipe made
// its training data. Each request asks for `response_format: json_schema` {"reports": [{input, output: {drug_name,
// adverse_events}}]} with drug_name pinned to the requested drug, so a server that enforces schemas (OpenAI,
// vLLM, medlora serve) always answers valid pairs; every answer is still validated here. Requests are planned
// up front (drug x per-drug index, seed = base seed + request number), run with bounded concurrency and retried with
// exponential backoff; answered requests go to an append-only journal (journal.ts), so a killed run resumes without
// repeating them. The output is a JSON array of {input, output, provenance}, de-duplicated by normalised input,
// which `medlora data import ade-email` reads directly.
import { renameSync, writeFileSync } from 'node:fs';
import { MedloraError } from '../../util/errors.js';
import { fillTemplate, sha256, type DrugInfo, type SynthTemplate } from './inputs.js';
import { Journal, type JournalEntry } from './journal.js';

export interface SynthOptions {
  template: SynthTemplate;
  drugs: DrugInfo[];
  /** base URL of the API, e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1 */
  endpoint: string;
  model: string;
  /** sent as "Authorization: Bearer <key>" when given */
  apiKey?: string;
  out: string;
  journal: string;
  /** requests per drug (default 1) */
  perDrug?: number;
  /** most reports asked for per request (the schema's maxItems; default 10, as the recipe) */
  reportsPerRequest?: number;
  seed?: number;
  temperature?: number;
  maxTokens?: number;
  /** requests in flight at once (default 4) */
  concurrency?: number;
  /** retries of a failed request (default 5); waits backoffMs * 2^attempt (capped at 30 s) between tries */
  retries?: number;
  backoffMs?: number;
  /** per-request timeout (default 600 s) */
  timeoutMs?: number;
  onProgress?: (done: number, total: number) => void;
  /** injectable for tests (default: global fetch) */
  fetch?: typeof fetch;
}

export interface SynthRecord {
  input: string;
  output: { drug_name: string; adverse_events: string[] };
  provenance: {
    template_sha256: string;
    endpoint: string;
    model: string;
    seed: number;
    request: string;
    drug: string;
    drug_source: string;
  };
}

export interface SynthSummary {
  requests: number;
  /** requests answered by this run (the rest came from the journal) */
  sent: number;
  resumed: number;
  retries: number;
  records: number;
  invalid: number;
  duplicates: number;
  out: string;
  journal: string;
}

/** The JSON Schema a request asks for (drug_name pinned to the drug). */
export function reportSchema(drug: string, maxReports: number): Record<string, unknown> {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['reports'],
    properties: {
      reports: {
        type: 'array',
        minItems: 1,
        maxItems: maxReports,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['input', 'output'],
          properties: {
            input: { type: 'string', minLength: 1, description: 'the adverse-event report email' },
            output: {
              type: 'object',
              additionalProperties: false,
              required: ['drug_name', 'adverse_events'],
              properties: {
                drug_name: { type: 'string', enum: [drug] },
                adverse_events: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
              },
            },
          },
        },
      },
    },
  };
}

interface Planned {
  key: string;
  drug: DrugInfo;
  index: number;
  seed: number;
  body: Record<string, unknown>;
}

/** Problems of one report (empty = valid). */
export function checkReport(r: unknown, drug: string): string[] {
  const o = r as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || Array.isArray(o)) return ['not an object'];
  const errs: string[] = [];
  if (typeof o.input !== 'string' || o.input.trim() === '') errs.push('input: not a non-blank string');
  const out = o.output as Record<string, unknown> | null;
  if (!out || typeof out !== 'object' || Array.isArray(out)) return [...errs, 'output: not an object'];
  if (out.drug_name !== drug)
    errs.push(`output.drug_name: ${JSON.stringify(out.drug_name)} is not the requested drug ${JSON.stringify(drug)}`);
  if (
    !Array.isArray(out.adverse_events) ||
    out.adverse_events.length === 0 ||
    !out.adverse_events.every((x) => typeof x === 'string' && x.trim() !== '')
  ) {
    errs.push('output.adverse_events: not a non-empty array of non-blank strings');
  }
  return errs;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const normal = (s: string): string => s.normalize('NFC').replace(/\s+/g, ' ').trim().toLowerCase();

async function callOnce(o: SynthOptions, p: Planned): Promise<string> {
  const f = o.fetch ?? fetch;
  const url = `${o.endpoint.replace(/\/+$/, '')}/chat/completions`;
  let res: Response;
  try {
    res = await f(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(o.apiKey ? { Authorization: `Bearer ${o.apiKey}` } : {}) },
      body: JSON.stringify(p.body),
      signal: AbortSignal.timeout(o.timeoutMs ?? 600_000),
    });
  } catch (e) {
    // fetch says only "fetch failed": name the endpoint and the network cause (retried like a 5xx)
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new MedloraError(
      `${url}: no answer (${cause?.code ?? cause?.message ?? (e as Error).message}); is the endpoint running?`,
    );
  }
  const text = await res.text();
  if (!res.ok) {
    const err = new MedloraError(`${url}: HTTP ${res.status}: ${text.slice(0, 300)}`);
    (err as MedloraError & { retryable?: boolean }).retryable = res.status === 429 || res.status >= 500;
    throw err;
  }
  let j: { choices?: Array<{ message?: { content?: unknown } }> };
  try {
    j = JSON.parse(text) as typeof j;
  } catch {
    throw new MedloraError(`${url}: the answer is not JSON: ${text.slice(0, 200)}`);
  }
  const content = j.choices?.[0]?.message?.content;
  if (typeof content !== 'string') throw new MedloraError(`${url}: the answer has no choices[0].message.content`);
  return content;
}

/** Run (or resume) a synth run; writes `out` and returns the counts. */
export async function synthesize(o: SynthOptions): Promise<SynthSummary> {
  const perDrug = o.perDrug ?? 1;
  const maxReports = o.reportsPerRequest ?? 10;
  const seed0 = o.seed ?? 0;
  const conc = o.concurrency ?? 4;
  const retries = o.retries ?? 5;
  const backoff = o.backoffMs ?? 500;
  for (const [k, v] of [
    ['perDrug', perDrug],
    ['reportsPerRequest', maxReports],
    ['concurrency', conc],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new MedloraError(`synth: ${k} must be a positive integer, got ${v}`);
  }
  if (!Number.isInteger(retries) || retries < 0)
    throw new MedloraError(`synth: retries must be a non-negative integer, got ${retries}`);
  // the plan: every request and its key, independent of what already ran
  const plan: Planned[] = [];
  o.drugs.forEach((drug, di) => {
    for (let index = 0; index < perDrug; index++) {
      const seed = seed0 + di * perDrug + index;
      const body: Record<string, unknown> = {
        model: o.model,
        seed,
        messages: [{ role: 'user', content: fillTemplate(o.template, drug) }],
        response_format: {
          type: 'json_schema',
          json_schema: { name: 'adverse_event_reports', strict: true, schema: reportSchema(drug.drug, maxReports) },
        },
        ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
        ...(o.maxTokens !== undefined ? { max_tokens: o.maxTokens } : {}),
      };
      const key = sha256(JSON.stringify([o.endpoint, body]));
      plan.push({ key, drug, index, seed, body });
    }
  });
  const journal = new Journal(o.journal);
  const todo = plan.filter((p) => !journal.has(p.key));
  const resumed = plan.length - todo.length;
  let sent = 0;
  let retried = 0;
  let next = 0;
  let failure: unknown;
  o.onProgress?.(resumed, plan.length);
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < todo.length) {
      const p = todo[next++]!;
      for (let attempt = 0; ; attempt++) {
        try {
          const content = await callOnce(o, p);
          const e: JournalEntry = {
            key: p.key,
            drug: p.drug.drug,
            index: p.index,
            seed: p.seed,
            content,
            attempts: attempt + 1,
            at: new Date().toISOString(),
          };
          journal.append(e);
          sent++;
          o.onProgress?.(resumed + sent, plan.length);
          break;
        } catch (e) {
          const retryable = (e as { retryable?: boolean }).retryable !== false;
          if (!retryable || attempt >= retries) {
            failure ??= e;
            return;
          }
          retried++;
          await sleep(Math.min(30_000, backoff * 2 ** attempt));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, Math.max(1, todo.length)) }, worker));
  if (failure !== undefined) throw failure;

  // records from the journal, in plan order: validated, de-duplicated, with provenance
  const seen = new Set<string>();
  const records: SynthRecord[] = [];
  let invalid = 0;
  let duplicates = 0;
  for (const p of plan) {
    const e = journal.entries.get(p.key)!;
    let reports: unknown[];
    try {
      const v = JSON.parse(e.content) as { reports?: unknown };
      reports = Array.isArray(v?.reports) ? v.reports : Array.isArray(v) ? v : [];
      if (reports.length === 0) invalid++;
    } catch {
      invalid++;
      continue;
    }
    for (const r of reports) {
      if (checkReport(r, p.drug.drug).length) {
        invalid++;
        continue;
      }
      const rep = r as SynthRecord;
      const k = normal(rep.input);
      if (seen.has(k)) {
        duplicates++;
        continue;
      }
      seen.add(k);
      records.push({
        input: rep.input,
        output: { drug_name: rep.output.drug_name, adverse_events: rep.output.adverse_events },
        provenance: {
          template_sha256: o.template.sha256,
          endpoint: o.endpoint,
          model: o.model,
          seed: p.seed,
          request: p.key,
          drug: p.drug.drug,
          drug_source: p.drug.source,
        },
      });
    }
  }
  const tmp = `${o.out}.partial`;
  writeFileSync(tmp, `${JSON.stringify(records, null, 1)}\n`);
  renameSync(tmp, o.out);
  return {
    requests: plan.length,
    sent,
    resumed,
    retries: retried,
    records: records.length,
    invalid,
    duplicates,
    out: o.out,
    journal: o.journal,
  };
}

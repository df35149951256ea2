// Task ade-email: the drug and adverse events of an adverse-event report as compact canonical JSON,
// {"drug_name":"Abilify","adverse_events":["nausea","vomiting"]} (keys in this order; the JSON-schema grammar with
// non-blank strings constrains decoding to exactly this form).
import type { AdeEmail } from '../schema.js';
import type { Task } from './types.js';
import { checkItem, cleanOutput, listSchema, strItem, validateArray } from './lines.js';
import type { JsonSchema } from './json-schema.js';

const SCHEMA: JsonSchema = {
  type: 'object',
  required: ['drug_name', 'adverse_events'],
  additionalProperties: false,
  properties: { drug_name: { type: 'string' }, adverse_events: listSchema('adverse event') },
};

/** `{"drug_name": "...", "adverse_events": [...]}`: the first {...} object in the text (prose around it is ignored). */
export function parseAdeEmail(text: string): { items: AdeEmail; unparsed: string[] } {
  const empty: AdeEmail = { drug_name: '', adverse_events: [] };
  const t = cleanOutput(text);
  if (t === '') return { items: empty, unparsed: [] };
  const start = t.indexOf('{');
  const end = t.lastIndexOf('}');
  if (start < 0 || end < start) return { items: empty, unparsed: [t] };
  let obj: unknown;
  try {
    obj = JSON.parse(t.slice(start, end + 1));
  } catch {
    return { items: empty, unparsed: [t] };
  }
  const unparsed: string[] = [];
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return { items: empty, unparsed: [t] };
  const o = obj as Record<string, unknown>;
  let drug = '';
  if (typeof o.drug_name === 'string') drug = o.drug_name.trim();
  else if (o.drug_name !== undefined && o.drug_name !== null)
    unparsed.push(`drug_name: ${JSON.stringify(o.drug_name)}`);
  const events: string[] = [];
  const ae = o.adverse_events;
  if (Array.isArray(ae)) {
    for (const e of ae) {
      if (typeof e === 'string' && e.trim()) events.push(e.trim());
      else unparsed.push(`adverse_events item: ${JSON.stringify(e)}`);
    }
  } else if (typeof ae === 'string' && ae.trim()) {
    events.push(ae.trim()); // a lone string instead of a one-element list: harmless
  } else if (ae !== undefined && ae !== null) {
    unparsed.push(`adverse_events: ${JSON.stringify(ae)}`);
  }
  if (o.drug_name === undefined && ae === undefined) unparsed.push(t);
  return { items: { drug_name: drug, adverse_events: events }, unparsed };
}

export const adeEmail: Task<AdeEmail> = {
  name: 'ade-email',
  // the upstream recipe's prompt-template.txt is the GENERATION prompt for the emails; this extraction instruction
  // names the same two entities ("drug_name" and "adverse_events") and the same JSON shape.
  instruction:
    'Extract the entities "drug_name" and "adverse_events" from the following adverse event report and output them as JSON: {"drug_name": "...", "adverse_events": ["...", ...]}.',
  structured: true,
  render: (g) =>
    JSON.stringify({
      drug_name: checkItem('ade-email', g.drug_name),
      adverse_events: g.adverse_events.map((s) => checkItem('ade-email', s)),
    }),
  parse: parseAdeEmail,
  grammar: () => ({ kind: 'json', schema: SCHEMA, nonBlankStrings: true }),
  resultSchema: SCHEMA,
  validate: (g) => {
    const o = g as Record<string, unknown> | null;
    if (!o || typeof o !== 'object' || Array.isArray(o)) return 'gold must be an object {drug_name, adverse_events}';
    if (typeof o.drug_name !== 'string') return 'field "drug_name" must be a string';
    return validateArray(o.adverse_events, strItem, 'strings')?.replace(/^gold/, 'gold.adverse_events');
  },
  empty: () => ({ drug_name: '', adverse_events: [] }),
  labels: (g) => g.adverse_events.map(() => 'adverse_event'),
  isEmpty: () => false, // an answer always names the drug
  units: (a) => [
    // an empty drug name means "no answer" and is not a unit (so a missing prediction is one FN, not FN + FP)
    ...(a.drug_name.trim() ? [{ type: 'drug_name', names: [a.drug_name], text: a.drug_name }] : []),
    ...a.adverse_events.map((e) => ({ type: 'adverse_event', names: [e], text: e })),
  ],
  symmetricRelations: [],
  entities: (a) => {
    const out: Array<{ role: string; text: string }> = [];
    if (a.drug_name) out.push({ role: 'drug_name', text: a.drug_name });
    for (const e of a.adverse_events)
      if (e && !out.some((x) => x.role === 'adverse_event' && x.text === e))
        out.push({ role: 'adverse_event', text: e });
    return out;
  },
  entityRoles: ['drug_name', 'adverse_event'],
  spec: () => ({ kind: 'builtin', name: 'ade-email' }),
};

// The training config's JSON Schema, generated from the declarative table in config.ts (one definition of each key):
// `npm run docs` writes it to configs/medlora.schema.json, which YAML editors use (yaml-language-server) to complete
// and check config files. Keywords are JSON Schema draft 2020-12 (json-schema.org/draft/2020-12/json-schema-validation).
// Cross-field rules (warmup_steps vs warmup_ratio, the run-key rules) stay in validateConfig: a schema only sees keys.
import { REPORT_TARGETS, SECTIONS, TOP, type Field, type Kind, type Section } from './config.js';
import { DEVICE_SPEC_PATTERN } from '../tensor/device.js';

type Schema = Record<string, unknown>;

const nonEmptyString: Schema = { type: 'string', minLength: 1 };

/** The schema of one value kind (without null: see fieldSchema). */
function kindSchema(k: Kind): Schema {
  switch (k.t) {
    case 'number':
    case 'int': {
      const s: Schema = { type: k.t === 'int' ? 'integer' : 'number' };
      if (k.min !== undefined) s['minExclusive' in k && k.minExclusive ? 'exclusiveMinimum' : 'minimum'] = k.min;
      if (k.t === 'number' && k.max !== undefined) s[k.maxExclusive ? 'exclusiveMaximum' : 'maximum'] = k.max;
      return s;
    }
    case 'string':
      return { ...nonEmptyString };
    case 'device':
      return { type: 'string', pattern: DEVICE_SPEC_PATTERN.source };
    case 'bool':
      return { type: 'boolean' };
    case 'enum':
      return { type: 'string', enum: [...k.values] };
    // names, one regex, or PEFT's all-linear shorthand (a string either way)
    case 'modules':
      return { anyOf: [{ type: 'array', items: { ...nonEmptyString }, minItems: 1 }, { ...nonEmptyString }] };
    case 'report_to':
      return {
        anyOf: [
          { type: 'array', items: { type: 'string', enum: [...REPORT_TARGETS] } },
          { type: 'string', enum: ['all', 'none', ...REPORT_TARGETS] },
        ],
      };
    case 'bool_or_string':
      return { anyOf: [{ type: 'boolean' }, { ...nonEmptyString }] };
    case 'object':
      return { type: 'object' };
  }
}

function fieldSchema(f: Field): Schema {
  const inner = kindSchema(f.kind);
  const body = f.nullable ? { anyOf: [inner, { type: 'null' }] } : inner;
  return { description: f.doc, ...(f.default !== undefined ? { default: f.default } : {}), ...body };
}

function sectionSchema(sec: Section, description: string): Schema {
  return {
    type: 'object',
    description,
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(sec).map(([k, f]) => [k, fieldSchema(f)])),
  };
}

const SECTION_DOCS: Record<string, string> = {
  data: 'training and validation data',
  lora: 'LoRA / DoRA (PEFT LoraConfig names and defaults)',
  adapter_v2: 'LLaMA-Adapter V2 (litgpt names and defaults)',
  quantization: 'QLoRA (bitsandbytes BitsAndBytesConfig names)',
  training: 'optimisation, schedule, logging, evaluation and checkpoints (HF TrainingArguments names and defaults)',
};

/**
 * The JSON Schema of a medlora training config file. No key is required: model, output_dir and data.train may come
 * from flags (validateConfig reports a missing one with its flag after merging).
 */
export function configJsonSchema(): Schema {
  const properties: Schema = Object.fromEntries(Object.entries(TOP).map(([k, f]) => [k, fieldSchema(f)]));
  for (const [name, sec] of Object.entries(SECTIONS)) properties[name] = sectionSchema(sec, SECTION_DOCS[name] ?? name);
  properties.task = {
    type: 'object',
    description: 'a task of your own: {name, instruction, schema (a JSON Schema of the answer)}',
    properties: {
      name: { ...nonEmptyString },
      instruction: { ...nonEmptyString },
      schema: { type: 'object' },
      description: { type: 'string' },
    },
    required: ['name', 'instruction', 'schema'],
    additionalProperties: false,
  };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'medlora training config',
    description: 'generated from src/train/config.ts by `npm run docs`; do not edit',
    type: 'object',
    additionalProperties: false,
    properties,
  };
}

/** The file text of configs/medlora.schema.json. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

// The training config's JSON Schema (src/train/config-json-schema.ts): the shipped configs/medlora.schema.json equals
// the generated one (`npm run docs` rewrites it), every preset in configs/ opens with the yaml-language-server line and
// validates against it, and the schema agrees with validateConfig on values it must refuse (a checker that can fail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { packageRoot } from '../../src/util/paths.js';
import { configJsonSchema, configJsonSchemaText } from '../../src/train/config-json-schema.js';
import { validateConfig } from '../../src/train/config.js';

type Schema = Record<string, unknown>;
const MODELINE = '# yaml-language-server: $schema=./medlora.schema.json';
const configs = join(packageRoot(), 'configs');
const presets = readdirSync(configs)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

// A small independent validator for exactly the keywords the generator emits (the test below fails on any other).
const CHECKED = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'enum',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'pattern',
  'items',
  'minItems',
  'anyOf',
]);
const ANNOTATIONS = new Set(['$schema', 'title', 'description', 'default']);

function typeOk(type: string, v: unknown): boolean {
  switch (type) {
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number';
    case 'integer':
      return Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
    default:
      throw new Error(`unknown type ${type}`);
  }
}

function validate(s: Schema, v: unknown, path = ''): string[] {
  const errs: string[] = [];
  const at = path || '(top)';
  if (s.anyOf) {
    if (!(s.anyOf as Schema[]).some((a) => validate(a, v, path).length === 0))
      errs.push(`${at}: matches no alternative`);
    return errs;
  }
  if (s.type !== undefined && !typeOk(s.type as string, v))
    return [`${at}: expected ${String(s.type)}, got ${JSON.stringify(v)}`];
  if (s.enum && !(s.enum as unknown[]).includes(v)) errs.push(`${at}: ${JSON.stringify(v)} not in enum`);
  if (typeof v === 'number') {
    if (s.minimum !== undefined && v < (s.minimum as number)) errs.push(`${at}: ${v} < minimum`);
    if (s.maximum !== undefined && v > (s.maximum as number)) errs.push(`${at}: ${v} > maximum`);
    if (s.exclusiveMinimum !== undefined && v <= (s.exclusiveMinimum as number))
      errs.push(`${at}: ${v} <= exclusiveMinimum`);
    if (s.exclusiveMaximum !== undefined && v >= (s.exclusiveMaximum as number))
      errs.push(`${at}: ${v} >= exclusiveMaximum`);
  }
  if (typeof v === 'string' && s.minLength !== undefined && v.length < (s.minLength as number))
    errs.push(`${at}: too short`);
  // JSON Schema's pattern is an ECMA-262 regex, unanchored (json-schema.org validation 6.3.3)
  if (typeof v === 'string' && s.pattern !== undefined && !new RegExp(s.pattern as string, 'u').test(v))
    errs.push(`${at}: does not match ${s.pattern as string}`);
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < (s.minItems as number)) errs.push(`${at}: too few items`);
    if (s.items) v.forEach((x, i) => errs.push(...validate(s.items as Schema, x, `${path}[${i}]`)));
  }
  if (s.type === 'object' && typeof v === 'object' && v !== null) {
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const r of (s.required ?? []) as string[]) if (!(r in v)) errs.push(`${at}: missing ${r}`);
    for (const [k, x] of Object.entries(v)) {
      const p = path ? `${path}.${k}` : k;
      if (props[k]) errs.push(...validate(props[k]!, x, p));
      else if (s.additionalProperties === false) errs.push(`${p}: unknown key`);
    }
  }
  return errs;
}

function keywordsOf(s: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(s)) s.forEach((x) => keywordsOf(x, out));
  else if (s && typeof s === 'object') {
    for (const [k, v] of Object.entries(s)) {
      out.add(k);
      if (k === 'properties') Object.values(v as object).forEach((x) => keywordsOf(x, out));
      else if (k !== 'default' && k !== 'enum') keywordsOf(v, out);
    }
  }
  return out;
}

const presetOf = (f: string): Schema => parseYaml(readFileSync(join(configs, f), 'utf8')) as Schema;

test('configs/medlora.schema.json equals the schema generated from the config table (run `npm run docs`)', () => {
  const shipped = readFileSync(join(configs, 'medlora.schema.json'), 'utf8');
  assert.equal(shipped, configJsonSchemaText(), 'configs/medlora.schema.json is stale: run `npm run docs`');
});

test('the schema uses only keywords the test validator checks', () => {
  const unknown = [...keywordsOf(configJsonSchema())].filter((k) => !CHECKED.has(k) && !ANNOTATIONS.has(k));
  assert.deepEqual(unknown, []);
});

test('every preset in configs/ names the schema on its first line and validates against it', () => {
  assert.ok(presets.length >= 5, `presets: ${presets.join(', ')}`);
  for (const f of presets) {
    assert.equal(readFileSync(join(configs, f), 'utf8').split('\n')[0], MODELINE, `${f}: first line`);
    const errs = validate(configJsonSchema(), presetOf(f));
    console.log(`  ${f}: ${errs.length} schema errors`);
    assert.deepEqual(errs, [], f);
  }
});

test('the schema refuses what validateConfig refuses, and accepts a full valid config', () => {
  const base = {
    ...presetOf(presets[0]!),
    model: 'm',
    data: { ...(presetOf(presets[0]!).data as Schema), train: 't.jsonl' },
  };
  const schema = configJsonSchema();
  assert.deepEqual(validate(schema, base), []);
  validateConfig(structuredClone(base), 'base'); // the same config passes the real validator
  for (const device of ['auto', 'cpu', 'cuda', 'cuda:1']) {
    const ok = { ...base, training: { ...((base as Schema).training as Schema), device } };
    assert.deepEqual(validate(schema, ok), [], device);
    validateConfig(structuredClone(ok), device);
  }
  const bad: Array<[string, Schema]> = [
    ['lora.r 0', { ...base, lora: { r: 0 } }],
    ['lora.lora_alpha 0 (exclusive minimum)', { ...base, lora: { lora_alpha: 0 } }],
    ['lora.lora_dropout 1 (exclusive maximum)', { ...base, lora: { lora_dropout: 1 } }],
    ['training.max_step (a typo)', { ...base, training: { max_step: 3 } }],
    ['unknown top-level key', { ...base, trainng: {} }],
    ['optim not in the enum', { ...base, training: { optim: 'sgd' } }],
    ['learning_rate a string', { ...base, training: { learning_rate: '1e-4' } }],
    ['target_modules empty list', { ...base, lora: { target_modules: [] } }],
    ['report_to wandb', { ...base, training: { report_to: ['wandb'] } }],
    ['empty model', { ...base, model: '' }],
    ['training.device gpu', { ...base, training: { device: 'gpu' } }],
    ['training.device cuda: (no index)', { ...base, training: { device: 'cuda:' } }],
  ];
  for (const [what, cfg] of bad) {
    const errs = validate(schema, cfg);
    assert.ok(errs.length > 0, `the schema accepts ${what}`);
    assert.throws(() => validateConfig(structuredClone(cfg), what), /./, `validateConfig accepts ${what}`);
  }
  console.log(`  ${bad.length} bad configs refused by both the schema and validateConfig`);
});

// PEFT LoRA adapter format: adapter_config.json (typed, unknown fields kept for round trips) and
// adapter_model.safetensors with keys base_model.model.<module path>.lora_A.weight [r, in] / .lora_B.weight [out, r]
// (the layout peft's save_pretrained writes; the adapter name "default" is not part of saved keys).
// Over ~400 lines on purpose: the whole adapter_config.json contract (every PEFT key read, refused or ignored) sits
// beside the file reader and writer that depend on it.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { warn } from '../util/warn.js';
import {
  SafetensorsFile,
  writeFileAtomic,
  writeSafetensors,
  type TensorData,
  type TensorInfo,
  type TensorSource,
} from './safetensors.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

export interface LoraConfig {
  peft_type: 'LORA';
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** module-name suffixes, or one regex string matched against the full module path (PEFT's re.fullmatch) */
  target_modules: string[] | string;
  bias: 'none' | 'all' | 'lora_only';
  /** true when the base layer stores weights as [in, out] (GPT-2 Conv1D); A/B stay [r, in] / [out, r] regardless */
  fan_in_fan_out: boolean;
  /** scale alpha / sqrt(r) instead of alpha / r */
  use_rslora: boolean;
  modules_to_save: string[] | null;
  base_model_name_or_path: string | null;
  task_type: string | null;
  /** PEFT: only modules in these layer indices are adapted (list target_modules, suffix matches only; see isTargetModule) */
  layers_to_transform?: number[] | number | null;
  /** PEFT: the name(s) of the layer list the index follows (default: any "<name>.<index>." segment) */
  layers_pattern?: string[] | string | null;
  /** PEFT: modules never adapted (list: path or suffix; string: regex over the whole path) */
  exclude_modules?: string[] | string | null;
  /** every other field of adapter_config.json, written back unchanged */
  extra: Record<string, unknown>;
}

const KNOWN = [
  'peft_type',
  'r',
  'lora_alpha',
  'lora_dropout',
  'target_modules',
  'bias',
  'fan_in_fan_out',
  'use_rslora',
  'modules_to_save',
  'base_model_name_or_path',
  'task_type',
  'layers_to_transform',
  'layers_pattern',
  'exclude_modules',
] as const;

/**
 * PEFT LoraConfig fields (peft 0.21 tuners/lora/config.py) that change what the adapter computes and that medlora does not
 * implement: an error unless they hold their neutral value. `what` says what they are.
 */
const PEFT_NUMERIC: Record<string, { neutral: (v: unknown) => boolean; what: string }> = {
  use_dora: { neutral: (v) => v === false || v == null, what: 'DoRA (weight-decomposed LoRA)' },
  lora_bias: { neutral: (v) => v === false || v == null, what: 'a trainable bias on lora_B' },
  rank_pattern: {
    neutral: (v) => v == null || (typeof v === 'object' && Object.keys(v as object).length === 0),
    what: 'per-module ranks',
  },
  alpha_pattern: {
    neutral: (v) => v == null || (typeof v === 'object' && Object.keys(v as object).length === 0),
    what: 'per-module alphas',
  },
  target_parameters: {
    neutral: (v) => v == null || (Array.isArray(v) && v.length === 0),
    what: 'LoRA on raw parameters',
  },
  trainable_token_indices: { neutral: (v) => v == null, what: 'trainable token embeddings' },
  layer_replication: { neutral: (v) => v == null, what: 'replicated layers' },
  alora_invocation_tokens: { neutral: (v) => v == null, what: 'activated LoRA (aLoRA)' },
  use_qalora: { neutral: (v) => v === false || v == null, what: 'QA-LoRA' },
  use_bdlora: { neutral: (v) => v === false || v == null, what: 'block-diagonal LoRA' },
  arrow_config: { neutral: (v) => v == null, what: 'Arrow routing' },
  monteclora_config: { neutral: (v) => v == null, what: 'MonteCLoRA' },
  kasa_config: { neutral: (v) => v == null, what: 'KaSA' },
  velora_config: { neutral: (v) => v == null, what: 'VeLoRA' },
};
/** PEFT LoraConfig fields that do not change the loaded adapter's forward pass (initialisation, bookkeeping). */
const PEFT_HARMLESS = new Set([
  'revision',
  'inference_mode',
  'init_lora_weights',
  'loftq_config',
  'eva_config',
  'corda_config',
  'lora_ga_config',
  'megatron_config',
  'megatron_core',
  'auto_mapping',
  'peft_version',
  'qalora_group_size',
  'ensure_weight_tying',
]);

/** Fill PEFT's defaults (LoraConfig dataclass: r 8, lora_alpha 8, dropout 0, bias "none", ...). */
export function makeLoraConfig(
  p: Partial<Omit<LoraConfig, 'peft_type'>> & { target_modules: string[] | string },
): LoraConfig {
  return {
    peft_type: 'LORA',
    r: 8,
    lora_alpha: 8,
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    use_rslora: false,
    modules_to_save: null,
    base_model_name_or_path: null,
    task_type: 'CAUSAL_LM',
    extra: {},
    ...p,
  };
}

/** Validate and type an adapter_config.json object; `file` names it in errors. */
export function parseLoraConfig(raw: unknown, file = ADAPTER_CONFIG, opts: { dora?: boolean } = {}): LoraConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new MedloraError(`${file}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const bad = (k: string, want: string): never => {
    throw new MedloraError(`${file}: "${k}" must be ${want}, got ${JSON.stringify(o[k])}`);
  };
  if (o.peft_type !== 'LORA')
    throw new MedloraError(`${file}: peft_type ${JSON.stringify(o.peft_type)} is not supported (only LORA)`);
  const r = o.r ?? 8;
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) bad('r', 'a positive integer');
  const alpha = o.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0)) bad('lora_alpha', 'a positive number');
  const dropout = o.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || dropout < 0 || dropout >= 1) bad('lora_dropout', 'a number in [0, 1)');
  const tm = o.target_modules;
  if (typeof tm === 'string') {
    try {
      new RegExp(tm);
    } catch (e) {
      throw new MedloraError(
        `${file}: target_modules regex ${JSON.stringify(tm)} does not compile (${(e as Error).message})`,
      );
    }
  } else if (!Array.isArray(tm) || tm.length === 0 || !tm.every((x) => typeof x === 'string')) {
    bad('target_modules', 'a non-empty list of module names or a regex string');
  }
  const bias = o.bias ?? 'none';
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only') bad('bias', '"none", "all" or "lora_only"');
  const bool = (k: string): boolean => {
    const v = o[k] ?? false;
    if (typeof v !== 'boolean') bad(k, 'true or false');
    return v as boolean;
  };
  const mts = o.modules_to_save ?? null;
  if (mts !== null && (!Array.isArray(mts) || !mts.every((x) => typeof x === 'string')))
    bad('modules_to_save', 'a list of module names or null');
  const strOrNull = (k: string): string | null => {
    const v = o[k] ?? null;
    if (v !== null && typeof v !== 'string') bad(k, 'a string or null');
    return v as string | null;
  };
  // DoRA (use_dora, kept in `extra`) only where the caller handles it (src/adapt/methods/dora.ts)
  if (o.use_dora === true && !opts.dora)
    throw new MedloraError(
      `${file}: use_dora=true (DoRA): load it as a DoRA adapter (finetuning: dora), not as plain LoRA`,
    );
  // other features that change the math and that medlora does not implement: refuse rather than load wrongly
  for (const [k, n] of Object.entries(PEFT_NUMERIC)) {
    if (k === 'use_dora' && opts.dora) continue;
    if (k in o && !n.neutral(o[k]))
      throw new MedloraError(`${file}: "${k}" = ${JSON.stringify(o[k])} (${n.what}) is not supported`);
  }
  if (Array.isArray(mts) && mts.length) {
    throw new MedloraError(
      `${file}: "modules_to_save" = ${JSON.stringify(mts)} (fully trained copies of modules) is not supported; only LoRA factors are`,
    );
  }
  const ltt = o.layers_to_transform ?? null;
  if (
    ltt !== null &&
    !(Number.isInteger(ltt) && (ltt as number) >= 0) &&
    !(Array.isArray(ltt) && ltt.every((x) => Number.isInteger(x) && x >= 0))
  ) {
    bad('layers_to_transform', 'a layer index, a list of layer indices or null');
  }
  const strList = (k: string): string[] | string | null => {
    const v = o[k] ?? null;
    if (v !== null && typeof v !== 'string' && !(Array.isArray(v) && v.every((x) => typeof x === 'string')))
      bad(k, 'a string, a list of strings or null');
    if (typeof v === 'string') {
      try {
        new RegExp(v);
      } catch (e) {
        throw new MedloraError(`${file}: ${k} regex ${JSON.stringify(v)} does not compile (${(e as Error).message})`);
      }
    }
    return v as string[] | string | null;
  };
  const layers_pattern = strList('layers_pattern'),
    exclude_modules = strList('exclude_modules');
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (!(KNOWN as readonly string[]).includes(k)) extra[k] = v;
  const unknown = Object.keys(extra).filter((k) => !PEFT_NUMERIC[k] && !PEFT_HARMLESS.has(k));
  if (unknown.length)
    warn(
      `${file}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')} ignored (not read by medlora; if ${unknown.length > 1 ? 'they change' : 'it changes'} the adapter's math, results will differ from PEFT)`,
    );
  return {
    peft_type: 'LORA',
    r: r as number,
    lora_alpha: alpha as number,
    lora_dropout: dropout as number,
    target_modules: tm as string[] | string,
    bias: bias as LoraConfig['bias'],
    fan_in_fan_out: bool('fan_in_fan_out'),
    use_rslora: bool('use_rslora'),
    modules_to_save: mts as string[] | null,
    base_model_name_or_path: strOrNull('base_model_name_or_path'),
    task_type: strOrNull('task_type'),
    // absent keys stay absent, so a config round-trips unchanged
    ...('layers_to_transform' in o ? { layers_to_transform: ltt as number[] | number | null } : {}),
    ...('layers_pattern' in o ? { layers_pattern } : {}),
    ...('exclude_modules' in o ? { exclude_modules } : {}),
    extra,
  };
}

/** The JSON object for adapter_config.json (known fields first, then the preserved extras). */
export function loraConfigToJson(c: LoraConfig): Record<string, unknown> {
  const { extra, ...known } = c;
  for (const k of ['layers_to_transform', 'layers_pattern', 'exclude_modules'] as const)
    if (known[k] === undefined) delete known[k];
  return { ...known, ...extra };
}

/** LoRA output scale: lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. */
export function loraScale(c: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number {
  return c.use_rslora ? c.lora_alpha / Math.sqrt(c.r) : c.lora_alpha / c.r;
}

export type TargetSelection = Pick<LoraConfig, 'target_modules'> &
  Partial<Pick<LoraConfig, 'layers_to_transform' | 'layers_pattern' | 'exclude_modules'>>;

/** Python re.match/fullmatch over a JS regex source (PEFT's patterns are plain regexes; anchors added here). */
const rx = (src: string, full: boolean): RegExp => new RegExp(`^(?:${src})${full ? '$' : ''}`);

/**
 * Whether a module path is targeted, exactly as PEFT 0.21 decides (tuners_utils.check_target_module_exists):
 * 1. exclude_modules: a string is a regex that must match the whole path; a list entry equals the path or is its
 *    dotted suffix -> never targeted;
 * 2. target_modules as a string: a regex that must match the whole path ("all-linear": every path but the output layer;
 *    callers only ask about Linear modules);
 * 3. a list entry equal to the whole path -> targeted (layers_to_transform is NOT applied to such exact matches);
 * 4. otherwise a list entry that is a dotted suffix -> targeted, and when layers_to_transform is set the path must hold
 *    a layer index: with layers_pattern, the first "<pattern>.<index>." segment; without, the first "<name>.<index>."
 *    segment (re.match(r".*?\.[^.]*\.(\d+)\.")); an int compares equal, a list must contain it. No index -> not targeted.
 */
export function isTargetModule(c: TargetSelection, path: string): boolean {
  const ex = c.exclude_modules;
  if (ex) {
    if (typeof ex === 'string') {
      if (rx(ex, true).test(path)) return false;
    } else if (ex.some((e) => path === e || path.endsWith(`.${e}`))) return false;
  }
  const tm = c.target_modules;
  let found: boolean;
  if (tm === 'all-linear') found = !(path === 'lm_head' || path.endsWith('.lm_head'));
  else if (typeof tm === 'string') return rx(tm, true).test(path);
  else if (tm.includes(path)) return true;
  else found = tm.some((t) => path.endsWith(`.${t}`));
  const idx = c.layers_to_transform;
  const usingIdx = idx !== undefined && idx !== null && (Array.isArray(idx) ? idx.length !== 0 : true);
  if (!usingIdx || !found) return found;
  const pats =
    c.layers_pattern == null || c.layers_pattern.length === 0
      ? null
      : typeof c.layers_pattern === 'string'
        ? [c.layers_pattern]
        : c.layers_pattern;
  let m: RegExpExecArray | null = null;
  if (pats === null) m = /^.*?\.[^.]*\.(\d+)\./.exec(path);
  else
    for (const p of pats) {
      m = new RegExp(`^(?:^|.*?\\.)${p}\\.(\\d+)\\.`).exec(path);
      if (m) break;
    }
  if (!m) return false;
  const layer = Number(m[1]);
  return Array.isArray(idx) ? idx.includes(layer) : layer === idx;
}

const PREFIX = 'base_model.model.';

export function loraKey(modulePath: string, which: 'A' | 'B'): string {
  return `${PREFIX}${modulePath}.lora_${which}.weight`;
}

/** Parse a saved LoRA key back to (module path, A|B); undefined for keys that are not LoRA A/B weights. */
export function parseLoraKey(key: string): { module: string; which: 'A' | 'B' } | undefined {
  const m = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/.exec(key);
  return m ? { module: m[1]!, which: m[2] as 'A' | 'B' } : undefined;
}

export interface LoraModule {
  module: string;
  A: TensorInfo;
  B: TensorInfo;
  /** in_features (A's columns) and out_features (B's rows) */
  inFeatures: number;
  outFeatures: number;
}

/**
 * Check a set of adapter tensors (name -> dtype/shape) against the config: every LoRA module has A and B, A is
 * [r, in], B is [out, r]; DoRA / embedding-LoRA keys are refused. Returns modules (sorted) and the other names
 * (e.g. modules_to_save copies).
 */
export function validateAdapterTensors(
  label: string,
  config: LoraConfig,
  infos: Array<Pick<TensorInfo, 'name' | 'shape'> & Partial<TensorInfo>>,
): {
  modules: Map<string, { A?: (typeof infos)[number]; B?: (typeof infos)[number] }>;
  others: string[];
  magnitudes: Map<string, (typeof infos)[number]>;
} {
  const modules = new Map<string, { A?: (typeof infos)[number]; B?: (typeof infos)[number] }>();
  /** DoRA (config use_dora): base_model.model.<module>.lora_magnitude_vector [out] per module */
  const magnitudes = new Map<string, (typeof infos)[number]>();
  const others: string[] = [];
  for (const info of infos) {
    const k = parseLoraKey(info.name);
    if (!k) {
      const mag = /^base_model\.model\.(.+)\.lora_magnitude_vector$/.exec(info.name);
      if (mag && config.extra.use_dora === true) {
        magnitudes.set(mag[1]!, info);
        continue;
      }
      if (/lora_magnitude_vector/.test(info.name))
        throw new MedloraError(`${label}: '${info.name}' is a DoRA tensor; DoRA adapters are not supported`);
      if (/lora_embedding_[AB]/.test(info.name))
        throw new MedloraError(`${label}: '${info.name}' is an embedding LoRA; only Linear-layer LoRA is supported`);
      if (/\.lora_[AB]\./.test(info.name))
        throw new MedloraError(`${label}: '${info.name}' does not follow base_model.model.<module>.lora_A|B.weight`);
      others.push(info.name);
      continue;
    }
    const e = modules.get(k.module) ?? {};
    e[k.which] = info;
    modules.set(k.module, e);
  }
  if (modules.size === 0)
    throw new MedloraError(`${label}: no LoRA tensors (keys like ${loraKey('model.layers.0.self_attn.q_proj', 'A')})`);
  for (const [m, e] of modules) {
    if (!e.A) throw new MedloraError(`${label}: module '${m}' has lora_B but no lora_A (${loraKey(m, 'A')} missing)`);
    if (!e.B) throw new MedloraError(`${label}: module '${m}' has lora_A but no lora_B (${loraKey(m, 'B')} missing)`);
    const a = e.A.shape,
      b = e.B.shape;
    if (a.length !== 2 || a[0] !== config.r) {
      throw new MedloraError(
        `${label}: '${loraKey(m, 'A')}' has shape ${JSON.stringify(a)}; expected [r=${config.r}, in_features]`,
      );
    }
    if (b.length !== 2 || b[1] !== config.r) {
      throw new MedloraError(
        `${label}: '${loraKey(m, 'B')}' has shape ${JSON.stringify(b)}; expected [out_features, r=${config.r}]`,
      );
    }
  }
  if (config.extra.use_dora === true) {
    for (const [m, e] of modules) {
      const mv = magnitudes.get(m);
      if (!mv)
        throw new MedloraError(`${label}: DoRA adapter (use_dora) without '${PREFIX}${m}.lora_magnitude_vector'`);
      if (mv.shape.length !== 1 || mv.shape[0] !== e.B!.shape[0])
        throw new MedloraError(
          `${label}: '${PREFIX}${m}.lora_magnitude_vector' has shape ${JSON.stringify(mv.shape)}; expected [out_features=${e.B!.shape[0]}]`,
        );
    }
    for (const m of magnitudes.keys())
      if (!modules.has(m))
        throw new MedloraError(`${label}: '${PREFIX}${m}.lora_magnitude_vector' has no lora_A / lora_B`);
  }
  return { modules: new Map([...modules].sort(([x], [y]) => (x < y ? -1 : 1))), others: others.sort(), magnitudes };
}

export interface Adapter {
  dir: string;
  config: LoraConfig;
  tensors: TensorSource;
  modules: Map<string, LoraModule>;
  /** non-LoRA tensors in the file (e.g. modules_to_save weights) */
  otherTensors: string[];
  /** DoRA magnitude vectors by module path (empty unless config use_dora) */
  magnitudes: Map<string, TensorInfo>;
}

/** Read and validate a PEFT LoRA adapter folder. */
export function readAdapter(dir: string, opts: { dora?: boolean } = {}): Adapter {
  const cfgPath = join(dir, ADAPTER_CONFIG);
  if (!existsSync(cfgPath)) throw new MedloraError(`${dir}: no ${ADAPTER_CONFIG} (is this a PEFT adapter folder?)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new MedloraError(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  const config = parseLoraConfig(raw, cfgPath, opts);
  const wPath = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(wPath)) {
    const bin = existsSync(join(dir, 'adapter_model.bin'));
    throw new MedloraError(
      `${dir}: no ${ADAPTER_WEIGHTS}${bin ? ' (found adapter_model.bin: pickled PyTorch weights are not read; re-save with safe_serialization=True)' : ''}`,
    );
  }
  const st = SafetensorsFile.open(wPath);
  const { modules, others, magnitudes } = validateAdapterTensors(
    wPath,
    config,
    st.names().map((n) => st.info(n)),
  );
  const out = new Map<string, LoraModule>();
  for (const [m, e] of modules) {
    const A = e.A as TensorInfo,
      B = e.B as TensorInfo;
    out.set(m, { module: m, A, B, inFeatures: A.shape[1]!, outFeatures: B.shape[0]! });
  }
  return {
    dir,
    config,
    tensors: st,
    modules: out,
    otherTensors: others,
    magnitudes: magnitudes as Map<string, TensorInfo>,
  };
}

/** Write adapter_model.safetensors then adapter_config.json, each atomically, after validating the tensors. */
export function writeAdapter(dir: string, config: LoraConfig, tensors: Record<string, TensorData>): void {
  const infos = Object.entries(tensors).map(([name, t]) => ({ name, shape: t.shape }));
  validateAdapterTensors(join(dir, ADAPTER_WEIGHTS), config, infos);
  writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors);
  writeFileAtomic(join(dir, ADAPTER_CONFIG), [
    new TextEncoder().encode(`${JSON.stringify(loraConfigToJson(config), null, 2)}\n`),
  ]);
}

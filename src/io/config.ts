// config.json -> typed ModelConfig, discriminated by model_type (llama, mistral, qwen2, gpt2, stablelm). Field names
// are Hugging Face's keys; every derived default is computed here, in one place, from the HF config classes'
// defaults (transformers models/<type>/configuration_<type>.py).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'stablelm', 'gpt2'] as const;

/** Normalised rope scaling: `type` / `rope_type` unified; only what medlora implements. */
export type RopeScaling =
  | { rope_type: 'linear'; factor: number }
  | { rope_type: 'llama3'; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number };

interface Common {
  vocab_size: number;
  tie_word_embeddings: boolean;
  bos_token_id: number | undefined;
  /** HF allows an int or a list; always a list here (empty when absent) */
  eos_token_id: number[];
  pad_token_id: number | undefined;
  /** checkpoint dtype as saved (torch_dtype or the newer `dtype`), e.g. "bfloat16" */
  torch_dtype: string | undefined;
  architectures: string[];
}

/** The shape fields every rotary decoder config has (llama family and stablelm), under their HF keys. */
interface RotaryDecoderShape extends Common {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  hidden_act: string;
  max_position_embeddings: number;
}

/** Llama-family decoders (RMSNorm, rotary, SwiGLU): llama, mistral, qwen2. */
export interface LlamaLikeConfig extends RotaryDecoderShape {
  model_type: 'llama' | 'mistral' | 'qwen2';
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  /** bias on q/k/v/o projections (llama/mistral key; qwen2 has q/k/v bias and no o bias: see qkv_bias/o_bias) */
  attention_bias: boolean;
  /** derived: bias on q_proj/k_proj/v_proj (qwen2: always true) */
  qkv_bias: boolean;
  /** derived: bias on o_proj */
  o_bias: boolean;
  mlp_bias: boolean;
  /** attention window (mistral; qwen2 only when use_sliding_window), null = full attention */
  sliding_window: number | null;
}

/** StableLM (transformers' stablelm, or the older remote-code stablelm_epoch). LayerNorm, partial rotary. */
export interface StableLmConfig extends RotaryDecoderShape {
  model_type: 'stablelm';
  layer_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  /** fraction of head_dim that is rotated (epoch: rope_pct) */
  partial_rotary_factor: number;
  use_qkv_bias: boolean;
  qk_layernorm: boolean;
  use_parallel_residual: boolean;
}

export interface Gpt2Config extends Common {
  model_type: 'gpt2';
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_positions: number;
  /** MLP width; HF default 4 * n_embd */
  n_inner: number;
  /** derived: n_embd / n_head */
  head_dim: number;
  activation_function: string;
  layer_norm_epsilon: number;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  reorder_and_upcast_attn: boolean;
}

export type ModelConfig = LlamaLikeConfig | StableLmConfig | Gpt2Config;

export interface ParsedConfig {
  config: ModelConfig;
  /** keys present in config.json that medlora does not use (for --verbose) */
  unknownKeys: string[];
}

/** Keys every HF config may carry that do not affect the math medlora implements. */
const GENERIC_KEYS = new Set(['architectures', 'model_type', 'torch_dtype', 'dtype', 'transformers_version', '_name_or_path',
  'use_cache', 'initializer_range', 'bos_token_id', 'eos_token_id', 'pad_token_id', 'vocab_size', 'tie_word_embeddings',
  'attention_dropout', 'resid_pdrop', 'embd_pdrop', 'attn_pdrop', 'hidden_dropout', 'auto_map', 'pretraining_tp',
  'task_specific_params', 'output_attentions', 'output_hidden_states', 'return_dict', 'is_decoder']);

/** Reads one typed field and remembers it as used. Errors name the file and key and say what was expected. */
class Fields {
  readonly used = new Set<string>();
  constructor(private readonly file: string, private readonly raw: Record<string, unknown>) {}

  private get(key: string): unknown { this.used.add(key); return this.raw[key]; }
  has(key: string): boolean { return this.raw[key] !== undefined && this.raw[key] !== null; }
  present(key: string): boolean { return key in this.raw; }
  fail(key: string, want: string): never {
    throw new MedloraError(`${this.file}: "${key}" must be ${want}, got ${JSON.stringify(this.raw[key])}`);
  }
  posInt(key: string, dflt?: number): number {
    const v = this.get(key) ?? dflt;
    if (v === undefined) throw new MedloraError(`${this.file}: "${key}" is required (a positive integer)`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) this.fail(key, 'a positive integer');
    return v;
  }
  optInt(key: string): number | undefined {
    const v = this.get(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.fail(key, 'a non-negative integer or null');
    return v;
  }
  posNum(key: string, dflt: number): number {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) this.fail(key, 'a positive number');
    return v;
  }
  num01(key: string, dflt: number): number {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) this.fail(key, 'a number in (0, 1]');
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }
  str(key: string, dflt: string): string {
    const v = this.get(key) ?? dflt;
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }
  ids(key: string): number[] {
    const v = this.get(key);
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) this.fail(key, 'an integer or a list of integers');
    return list as number[];
  }
  raw_(key: string): unknown { return this.get(key); }
}

function common(f: Fields, tieDefault: boolean): Common {
  const arch = f.raw_('architectures');
  const dtype = f.raw_('torch_dtype') ?? f.raw_('dtype');
  return {
    vocab_size: f.posInt('vocab_size'),
    tie_word_embeddings: f.bool('tie_word_embeddings', tieDefault),
    bos_token_id: f.optInt('bos_token_id'),
    eos_token_id: f.ids('eos_token_id'),
    pad_token_id: f.optInt('pad_token_id'),
    torch_dtype: typeof dtype === 'string' ? dtype : undefined,
    architectures: Array.isArray(arch) ? arch.filter((a): a is string => typeof a === 'string') : [],
  };
}

/**
 * The shape fields of a rotary decoder config, read once for every such architecture (max_position_embeddings aside:
 * its default differs per type): head_dim given, else hidden/heads which must divide; kv heads default kvDefault
 * (HF: Mistral 8) else heads, and must divide heads.
 */
function rotaryDecoderShape(f: Fields, file: string, kvDefault?: number): Omit<RotaryDecoderShape, keyof Common | 'max_position_embeddings'> {
  const hidden = f.posInt('hidden_size');
  const heads = f.posInt('num_attention_heads');
  let head_dim: number;
  if (f.has('head_dim')) head_dim = f.posInt('head_dim');
  else {
    f.raw_('head_dim');
    if (hidden % heads !== 0) throw new MedloraError(`${file}: hidden_size ${hidden} is not divisible by num_attention_heads ${heads} (and no head_dim is given)`);
    head_dim = hidden / heads;
  }
  const kv = f.posInt('num_key_value_heads', kvDefault ?? heads);
  if (heads % kv !== 0) throw new MedloraError(`${file}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kv}`);
  return {
    hidden_size: hidden,
    intermediate_size: f.posInt('intermediate_size'),
    num_hidden_layers: f.posInt('num_hidden_layers'),
    num_attention_heads: heads,
    num_key_value_heads: kv,
    head_dim,
    hidden_act: f.str('hidden_act', 'silu'),
  };
}

/** rope_scaling: null / {type|rope_type: default|linear|llama3, ...}; anything else is a clear error. */
export function normaliseRopeScaling(file: string, v: unknown): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new MedloraError(`${file}: "rope_scaling" must be an object or null`);
  const r = v as Record<string, unknown>;
  const kind = r.rope_type ?? r.type;
  const num = (k: string): number => {
    const x = r[k];
    if (typeof x !== 'number' || !(x > 0)) throw new MedloraError(`${file}: rope_scaling.${k} must be a positive number for ${String(kind)} scaling, got ${JSON.stringify(x)}`);
    return x;
  };
  switch (kind) {
    case 'default': return null;
    case 'linear': return { rope_type: 'linear', factor: num('factor') };
    case 'llama3': {
      const s = { rope_type: 'llama3' as const, factor: num('factor'), low_freq_factor: num('low_freq_factor'),
        high_freq_factor: num('high_freq_factor'), original_max_position_embeddings: num('original_max_position_embeddings') };
      if (!(s.high_freq_factor > s.low_freq_factor)) {
        throw new MedloraError(`${file}: rope_scaling.high_freq_factor (${s.high_freq_factor}) must exceed low_freq_factor (${s.low_freq_factor})`);
      }
      return s;
    }
    default:
      throw new MedloraError(`${file}: rope_scaling type ${JSON.stringify(kind)} is not supported (supported: default, linear, llama3)`);
  }
}

function parseLlamaLike(f: Fields, file: string, type: 'llama' | 'mistral' | 'qwen2'): LlamaLikeConfig {
  // HF defaults: Mistral kv 8 heads; Llama/Qwen2 kv = heads
  const shape = rotaryDecoderShape(f, file, type === 'mistral' ? 8 : undefined);
  const attention_bias = type === 'qwen2' ? false : f.bool('attention_bias', false);
  if (type === 'qwen2') f.raw_('attention_bias');
  // MistralConfig defaults sliding_window to 4096 (an explicit null means full attention)
  let sliding_window: number | null = null;
  if (type === 'mistral') sliding_window = f.present('sliding_window') ? (f.optInt('sliding_window') ?? null) : 4096;
  if (type === 'qwen2') {
    // Qwen2 applies sliding_window only when use_sliding_window is true (then to layers >= max_window_layers)
    if (f.bool('use_sliding_window', false)) throw new MedloraError(`${file}: use_sliding_window=true (Qwen2 sliding-window layers) is not supported`);
    f.raw_('sliding_window'); f.raw_('max_window_layers');
  }
  return {
    model_type: type,
    ...common(f, false),
    ...shape,
    max_position_embeddings: f.posInt('max_position_embeddings', type === 'llama' ? 2048 : type === 'mistral' ? 131072 : 32768),
    rms_norm_eps: f.posNum('rms_norm_eps', 1e-6),
    rope_theta: f.posNum('rope_theta', 10000),
    rope_scaling: normaliseRopeScaling(file, f.raw_('rope_scaling')),
    attention_bias,
    qkv_bias: type === 'qwen2' ? true : attention_bias,
    o_bias: attention_bias,
    mlp_bias: f.bool('mlp_bias', false),
    sliding_window,
  };
}

function parseStableLm(f: Fields, file: string, epoch: boolean): StableLmConfig {
  if (epoch) f.raw_('num_heads'); // stablelm_epoch duplicates num_attention_heads
  const shape = rotaryDecoderShape(f, file);
  // the remote-code stablelm_epoch config names two fields differently (norm_eps, rope_pct)
  const layer_norm_eps = epoch && f.has('norm_eps') ? f.posNum('norm_eps', 1e-5) : f.posNum('layer_norm_eps', 1e-5);
  const partial = epoch && f.has('rope_pct') ? f.num01('rope_pct', 0.25) : f.num01('partial_rotary_factor', 0.25);
  if (epoch) {
    const s = f.raw_('rotary_scaling_factor');
    if (s !== undefined && s !== 1 && s !== 1.0) throw new MedloraError(`${file}: rotary_scaling_factor ${JSON.stringify(s)} is not supported (only 1.0)`);
  }
  return {
    model_type: 'stablelm',
    ...common(f, false),
    ...shape,
    max_position_embeddings: f.posInt('max_position_embeddings', 4096),
    layer_norm_eps,
    rope_theta: f.posNum('rope_theta', 10000),
    rope_scaling: normaliseRopeScaling(file, f.raw_('rope_scaling')),
    partial_rotary_factor: partial,
    use_qkv_bias: f.bool('use_qkv_bias', false),
    qk_layernorm: f.bool('qk_layernorm', false),
    use_parallel_residual: f.bool('use_parallel_residual', false),
  };
}

function parseGpt2(f: Fields, file: string): Gpt2Config {
  const n_embd = f.posInt('n_embd');
  const n_head = f.posInt('n_head');
  if (n_embd % n_head !== 0) throw new MedloraError(`${file}: n_embd ${n_embd} is not divisible by n_head ${n_head}`);
  f.raw_('n_ctx'); // legacy alias of n_positions
  return {
    model_type: 'gpt2',
    ...common(f, true), // PretrainedConfig default: GPT-2 ties lm_head to wte
    n_embd,
    n_layer: f.posInt('n_layer'),
    n_head,
    n_positions: f.posInt('n_positions', 1024),
    n_inner: f.has('n_inner') ? f.posInt('n_inner') : (f.raw_('n_inner'), 4 * n_embd),
    head_dim: n_embd / n_head,
    activation_function: f.str('activation_function', 'gelu_new'),
    layer_norm_epsilon: f.posNum('layer_norm_epsilon', 1e-5),
    scale_attn_weights: f.bool('scale_attn_weights', true),
    scale_attn_by_inverse_layer_idx: f.bool('scale_attn_by_inverse_layer_idx', false),
    reorder_and_upcast_attn: f.bool('reorder_and_upcast_attn', false),
  };
}

/** Parse a config.json object. `file` names it in errors. */
export function parseModelConfig(raw: unknown, file = 'config.json'): ParsedConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new MedloraError(`${file}: expected a JSON object`);
  const obj = raw as Record<string, unknown>;
  const f = new Fields(file, obj);
  const t = obj.model_type;
  let config: ModelConfig;
  switch (t) {
    case 'llama': case 'mistral': case 'qwen2': config = parseLlamaLike(f, file, t); break;
    case 'stablelm': case 'stablelm_epoch': config = parseStableLm(f, file, t === 'stablelm_epoch'); break;
    case 'gpt2': config = parseGpt2(f, file); break;
    default:
      throw new MedloraError(`${file}: model_type ${JSON.stringify(t)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')} (stablelm_epoch is read as stablelm)`);
  }
  const unknownKeys = Object.keys(obj).filter((k) => !f.used.has(k) && !GENERIC_KEYS.has(k)).sort();
  return { config, unknownKeys };
}

/** Read dir/config.json (or a path to a .json file). */
export function loadModelConfig(pathOrDir: string): ParsedConfig {
  const file = pathOrDir.endsWith('.json') ? pathOrDir : join(pathOrDir, 'config.json');
  if (!existsSync(file)) throw new MedloraError(`${file}: not found (a Hugging Face model folder has a config.json)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new MedloraError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  return parseModelConfig(raw, file);
}

/** Size of the rotary part of each head (stablelm rotates only partial_rotary_factor of it). */
export function rotaryDim(c: LlamaLikeConfig | StableLmConfig): number {
  if (c.model_type !== 'stablelm') return c.head_dim;
  return Math.floor(c.head_dim * c.partial_rotary_factor);
}

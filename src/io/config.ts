// config.json -> typed ModelConfig, discriminated by model_type (llama, mistral, qwen2, gpt2, stablelm). Field names
// are Hugging Face's keys; every derived default is computed here, in one place, from the HF config classes'
// defaults (transformers models/<type>/configuration_<type>.py). Both spellings are read: transformers 4.x
// (`rope_theta`, `rope_scaling`, `torch_dtype`) and 5.x (`rope_parameters` holding rope_type / rope_theta / scaling keys,
// `dtype`). Every key is accounted for: read, known harmless, known to change the math (then an error unless it has
// its neutral value), or unknown (then a visible warning naming it).
// Over ~400 lines on purpose: one parser per architecture's config.json keys, kept together so every key that changes
// the numbers is understood or refused in one place (CONTRIBUTING.md).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { warn } from '../util/warn.js';

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'stablelm', 'gpt2'] as const;

/** Normalised rope scaling: `type` / `rope_type` unified; only what medlora implements. */
export type RopeScaling =
  | { rope_type: 'linear'; factor: number }
  | {
      rope_type: 'llama3';
      factor: number;
      low_freq_factor: number;
      high_freq_factor: number;
      original_max_position_embeddings: number;
    };

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
  /** keys present in config.json that medlora neither reads nor knows to be harmless */
  unknownKeys: string[];
  /** one-line warnings (unknown keys, conflicting spellings); loadModelConfig prints them */
  warnings: string[];
}

/**
 * Keys any HF config may carry that do not change a causal LM's forward pass (PretrainedConfig's bookkeeping, labels,
 * generation settings of old configs, initialisation, dropouts: medlora never applies model dropout; at inference HF
 * does not either). Keys of other libraries that only describe the file are listed too.
 */
const GENERIC_KEYS = new Set([
  'architectures',
  'model_type',
  'torch_dtype',
  'dtype',
  'transformers_version',
  '_name_or_path',
  'use_cache',
  'initializer_range',
  'initializer_factor',
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  'vocab_size',
  'tie_word_embeddings',
  'attention_dropout',
  'resid_pdrop',
  'embd_pdrop',
  'attn_pdrop',
  'hidden_dropout',
  'embedding_dropout',
  'auto_map',
  'pretraining_tp',
  'task_specific_params',
  'output_attentions',
  'output_hidden_states',
  'return_dict',
  'is_decoder',
  'torchscript',
  'use_bfloat16',
  'tf_legacy_loss',
  'chunk_size_feed_forward',
  'problem_type',
  'id2label',
  'label2id',
  'num_labels',
  'finetuning_task',
  'tokenizer_class',
  'prefix',
  'max_length',
  'min_length',
  'do_sample',
  'early_stopping',
  'num_beams',
  'num_beam_groups',
  'diversity_penalty',
  'temperature',
  'top_k',
  'top_p',
  'typical_p',
  'repetition_penalty',
  'length_penalty',
  'no_repeat_ngram_size',
  'encoder_no_repeat_ngram_size',
  'bad_words_ids',
  'num_return_sequences',
  'output_scores',
  'return_dict_in_generate',
  'forced_bos_token_id',
  'forced_eos_token_id',
  'remove_invalid_values',
  'exponential_decay_length_penalty',
  'suppress_tokens',
  'begin_suppress_tokens',
  'transformers.js_config',
  'is_llama_config',
  'loss_type',
  'gradient_checkpointing',
]);

/**
 * Keys that change the math when they hold anything but their neutral value, for architectures that do not read them
 * (an architecture that implements a key reads it first, so it is never checked here). A config that sets one is an
 * error naming the key: computing without it would silently differ from the model.
 */
const NUMERIC_KEYS: Record<string, { neutral: (v: unknown) => boolean; what: string }> = {
  attn_logit_softcapping: { neutral: (v) => v === null, what: 'attention logit soft-capping (Gemma-2)' },
  final_logit_softcapping: { neutral: (v) => v === null, what: 'final logit soft-capping (Gemma-2)' },
  qk_layernorm: { neutral: (v) => v === false || v === null, what: 'per-head q/k LayerNorm' },
  use_qk_norm: { neutral: (v) => v === false || v === null, what: 'q/k normalisation' },
  qk_norm: { neutral: (v) => v === false || v === null, what: 'q/k normalisation' },
  partial_rotary_factor: { neutral: (v) => v === 1 || v === null, what: 'partial rotary embeddings' },
  rotary_pct: { neutral: (v) => v === 1 || v === null, what: 'partial rotary embeddings' },
  rope_interleaved: { neutral: (v) => v === false || v === null, what: 'interleaved (GPT-J style) rotary embeddings' },
  sliding_window: { neutral: (v) => v === null, what: 'sliding-window attention' },
  use_sliding_window: { neutral: (v) => v === false || v === null, what: 'sliding-window attention' },
  layer_types: {
    neutral: (v) => v === null || (Array.isArray(v) && v.every((t) => t === 'full_attention')),
    what: 'per-layer attention types',
  },
  embedding_multiplier: { neutral: (v) => v === 1 || v === null, what: 'embedding scaling (Granite)' },
  logits_scaling: { neutral: (v) => v === 1 || v === null, what: 'logit scaling (Granite)' },
  residual_multiplier: { neutral: (v) => v === 1 || v === null, what: 'residual scaling (Granite)' },
  attention_multiplier: { neutral: (v) => v === null, what: 'attention scaling (Granite)' },
  scale_emb: { neutral: (v) => v === 1 || v === null, what: 'embedding scaling (MiniCPM)' },
  query_pre_attn_scalar: { neutral: (v) => v === null, what: 'attention scaling (Gemma)' },
  use_parallel_residual: { neutral: (v) => v === false || v === null, what: 'parallel residual' },
  use_qkv_bias: { neutral: (v) => v === false || v === null, what: 'q/k/v bias' },
  attention_bias: { neutral: (v) => v === false || v === null, what: 'attention projection biases' },
  mlp_bias: { neutral: (v) => v === false || v === null, what: 'MLP biases' },
  add_cross_attention: { neutral: (v) => v === false || v === null, what: 'cross-attention layers' },
  is_encoder_decoder: { neutral: (v) => v === false || v === null, what: 'an encoder-decoder model' },
  tie_encoder_decoder: { neutral: (v) => v === false || v === null, what: 'tied encoder/decoder weights' },
  pruned_heads: {
    neutral: (v) => v === null || (typeof v === 'object' && Object.keys(v as object).length === 0),
    what: 'pruned attention heads',
  },
  quantization_config: { neutral: (v) => v === null, what: 'a quantized checkpoint (bitsandbytes/GPTQ/AWQ...)' },
  num_experts: { neutral: (v) => v === null || v === 0, what: 'mixture-of-experts layers' },
  num_local_experts: { neutral: (v) => v === null || v === 0, what: 'mixture-of-experts layers' },
  rope_scaling: { neutral: (v) => v === null, what: 'rotary scaling (the architecture has no rotary embeddings)' },
  rope_parameters: { neutral: (v) => v === null, what: 'rotary embeddings (the architecture has none)' },
};

/** Keys each architecture's HF config class carries that do not change the forward pass as transformers computes it. */
const HARMLESS_KEYS: Record<string, string[]> = {
  llama: [],
  mistral: [],
  // Qwen2Attention has q/k/v bias and no o bias whatever attention_bias says (transformers modeling_qwen2.py)
  qwen2: ['attention_bias'],
  stablelm: [],
  // GPT2DoubleHeadsModel's sequence-summary head: not part of GPT2LMHeadModel
  gpt2: [
    'n_ctx',
    'summary_activation',
    'summary_first_dropout',
    'summary_proj_to_labels',
    'summary_type',
    'summary_use_proj',
  ],
};

/** Reads one typed field and remembers it as used. Errors name the file and key and say what was expected. */
class Fields {
  readonly used = new Set<string>();
  constructor(
    private readonly file: string,
    private readonly raw: Record<string, unknown>,
  ) {}

  private get(key: string): unknown {
    this.used.add(key);
    return this.raw[key];
  }
  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }
  present(key: string): boolean {
    return key in this.raw;
  }
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
    if (!list.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0))
      this.fail(key, 'an integer or a list of integers');
    return list as number[];
  }
  raw_(key: string): unknown {
    return this.get(key);
  }
}

function common(f: Fields, tieDefault: boolean, warnings: string[], file: string): Common {
  const arch = f.raw_('architectures');
  // transformers 5 writes `dtype` (torch_dtype is its deprecated alias); when both are present `dtype` wins
  const d5 = f.raw_('dtype'),
    d4 = f.raw_('torch_dtype');
  if (typeof d5 === 'string' && typeof d4 === 'string' && d5 !== d4)
    warnings.push(
      `${file}: "dtype" ${JSON.stringify(d5)} and "torch_dtype" ${JSON.stringify(d4)} disagree; using "dtype"`,
    );
  const dtype = d5 ?? d4;
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
function rotaryDecoderShape(
  f: Fields,
  file: string,
  kvDefault?: number,
): Omit<RotaryDecoderShape, keyof Common | 'max_position_embeddings'> {
  const hidden = f.posInt('hidden_size');
  const heads = f.posInt('num_attention_heads');
  let head_dim: number;
  if (f.has('head_dim')) head_dim = f.posInt('head_dim');
  else {
    f.raw_('head_dim');
    if (hidden % heads !== 0)
      throw new MedloraError(
        `${file}: hidden_size ${hidden} is not divisible by num_attention_heads ${heads} (and no head_dim is given)`,
      );
    head_dim = hidden / heads;
  }
  const kv = f.posInt('num_key_value_heads', kvDefault ?? heads);
  if (heads % kv !== 0)
    throw new MedloraError(`${file}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kv}`);
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

const ROPE_TYPES = ['default', 'linear', 'llama3'];
/** The keys each supported rope_type may carry (besides rope_type / type, rope_theta, partial_rotary_factor). */
const ROPE_KEYS: Record<string, string[]> = {
  default: [],
  linear: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
};

/**
 * A rope dict (legacy `rope_scaling`, or transformers 5 `rope_parameters` with the same keys) -> normalised scaling.
 * `key` names the dict in errors; `maxPositions` is transformers' default for llama3's original_max_position_embeddings
 * (standardize_rope_params). Unknown rope types and unknown keys inside the dict are errors: every one of them changes
 * the rotary frequencies.
 */
export function normaliseRopeScaling(
  file: string,
  v: unknown,
  key = 'rope_scaling',
  maxPositions?: number,
): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new MedloraError(`${file}: "${key}" must be an object or null`);
  const r = v as Record<string, unknown>;
  const kind = r.rope_type ?? r.type ?? 'default';
  if (typeof kind !== 'string' || !ROPE_TYPES.includes(kind)) {
    throw new MedloraError(
      `${file}: ${key}.rope_type ${JSON.stringify(kind)} is not supported (supported: ${ROPE_TYPES.join(', ')})`,
    );
  }
  const allowed = new Set(['rope_type', 'type', 'rope_theta', 'partial_rotary_factor', ...ROPE_KEYS[kind]!]);
  const stray = Object.keys(r).filter((k) => !allowed.has(k) && r[k] !== null);
  if (stray.length) {
    throw new MedloraError(
      `${file}: ${key}.${stray[0]} is not understood for rope_type ${JSON.stringify(kind)} (medlora reads ${[...allowed].join(', ')}); it would change the rotary embeddings`,
    );
  }
  const num = (k: string, dflt?: number): number => {
    const x = r[k] ?? dflt;
    if (typeof x !== 'number' || !(x > 0) || !Number.isFinite(x))
      throw new MedloraError(
        `${file}: ${key}.${k} must be a positive number for ${kind} scaling, got ${JSON.stringify(r[k])}`,
      );
    return x;
  };
  switch (kind) {
    case 'linear':
      return { rope_type: 'linear', factor: num('factor') };
    case 'llama3': {
      const s = {
        rope_type: 'llama3' as const,
        factor: num('factor'),
        low_freq_factor: num('low_freq_factor'),
        high_freq_factor: num('high_freq_factor'),
        original_max_position_embeddings: num('original_max_position_embeddings', maxPositions),
      };
      if (!(s.high_freq_factor > s.low_freq_factor)) {
        throw new MedloraError(
          `${file}: ${key}.high_freq_factor (${s.high_freq_factor}) must exceed low_freq_factor (${s.low_freq_factor})`,
        );
      }
      return s;
    }
    default:
      return null;
  }
}

interface Rope {
  rope_theta: number;
  rope_scaling: RopeScaling | null;
  partial_rotary_factor: number | undefined;
}

/**
 * The rotary settings under either spelling, with transformers 5's precedence (RotaryEmbeddingConfigMixin
 * convert_rope_params_to_dict / standardize_rope_params): a legacy `rope_scaling` dict replaces `rope_parameters`;
 * rope_theta and partial_rotary_factor inside the dict win over the top-level keys, which win over the default; llama3's
 * original_max_position_embeddings: a top-level key, else the dict's, else max_position_embeddings. Both dicts at once,
 * or per-layer-type (nested) rope_parameters, are errors.
 */
function readRope(f: Fields, file: string, warnings: string[], maxPositions: number): Rope {
  const legacy = f.raw_('rope_scaling'),
    modern = f.raw_('rope_parameters');
  if (legacy !== undefined && legacy !== null && modern !== undefined && modern !== null) {
    throw new MedloraError(
      `${file}: both "rope_scaling" and "rope_parameters" are set; keep one (transformers 5 would silently use rope_scaling)`,
    );
  }
  const key = modern !== undefined && modern !== null ? 'rope_parameters' : 'rope_scaling';
  const dict = (key === 'rope_parameters' ? modern : legacy) as Record<string, unknown> | null | undefined;
  if (dict !== undefined && dict !== null && (typeof dict !== 'object' || Array.isArray(dict)))
    throw new MedloraError(`${file}: "${key}" must be an object or null`);
  if (dict && Object.values(dict).some((x) => x !== null && typeof x === 'object')) {
    throw new MedloraError(
      `${file}: "${key}" holds per-layer-type rotary settings (${Object.keys(dict).join(', ')}); only one rotary setting for all layers is supported`,
    );
  }
  const topTheta = f.has('rope_theta') ? f.posNum('rope_theta', 10000) : (f.raw_('rope_theta'), undefined);
  let theta = topTheta ?? 10000;
  if (dict && dict.rope_theta !== undefined && dict.rope_theta !== null) {
    const t = dict.rope_theta;
    if (typeof t !== 'number' || !(t > 0))
      throw new MedloraError(`${file}: ${key}.rope_theta must be a positive number, got ${JSON.stringify(t)}`);
    if (topTheta !== undefined && topTheta !== t)
      warnings.push(
        `${file}: ${key}.rope_theta ${t} and "rope_theta" ${topTheta} disagree; using ${key}.rope_theta (as transformers 5 does)`,
      );
    theta = t;
  }
  let partial: number | undefined;
  const dp = dict?.partial_rotary_factor;
  if (dp !== undefined && dp !== null) {
    if (typeof dp !== 'number' || !(dp > 0 && dp <= 1))
      throw new MedloraError(
        `${file}: ${key}.partial_rotary_factor must be a number in (0, 1], got ${JSON.stringify(dp)}`,
      );
    partial = dp;
  }
  const topOrig = f.raw_('original_max_position_embeddings');
  let d = dict;
  if (dict && topOrig !== undefined && topOrig !== null && (dict.rope_type ?? dict.type) === 'llama3')
    d = { ...dict, original_max_position_embeddings: topOrig };
  return {
    rope_theta: theta,
    rope_scaling: normaliseRopeScaling(file, d, key, maxPositions),
    partial_rotary_factor: partial,
  };
}

function parseLlamaLike(
  f: Fields,
  file: string,
  type: 'llama' | 'mistral' | 'qwen2',
  warnings: string[],
): LlamaLikeConfig {
  // HF defaults: Mistral kv 8 heads; Llama/Qwen2 kv = heads
  const shape = rotaryDecoderShape(f, file, type === 'mistral' ? 8 : undefined);
  // only LlamaConfig has attention_bias / mlp_bias: Mistral has no biases and Qwen2 fixed ones whatever they say
  // (qwen2 lists attention_bias as harmless; elsewhere a true value is a NUMERIC_KEYS error)
  const attention_bias = type === 'llama' ? f.bool('attention_bias', false) : false;
  const max_position_embeddings = f.posInt(
    'max_position_embeddings',
    type === 'llama' ? 2048 : type === 'mistral' ? 131072 : 32768,
  );
  const num_hidden_layers = shape.num_hidden_layers;
  // MistralConfig defaults sliding_window to 4096 (an explicit null means full attention); every layer slides
  let sliding_window: number | null = null;
  if (type === 'mistral') sliding_window = f.present('sliding_window') ? (f.optInt('sliding_window') ?? null) : 4096;
  if (type === 'qwen2') sliding_window = qwen2SlidingWindow(f, file, num_hidden_layers);
  const rope = readRope(f, file, warnings, max_position_embeddings);
  if (rope.partial_rotary_factor !== undefined && rope.partial_rotary_factor !== 1) {
    throw new MedloraError(
      `${file}: partial_rotary_factor ${rope.partial_rotary_factor} is not supported for model_type ${type} (only StableLM rotates part of each head)`,
    );
  }
  return {
    model_type: type,
    ...common(f, false, warnings, file),
    ...shape,
    max_position_embeddings,
    rms_norm_eps: f.posNum('rms_norm_eps', 1e-6),
    rope_theta: rope.rope_theta,
    rope_scaling: rope.rope_scaling,
    attention_bias,
    qkv_bias: type === 'qwen2' ? true : attention_bias,
    o_bias: attention_bias,
    mlp_bias: type === 'llama' ? f.bool('mlp_bias', false) : false,
    sliding_window,
  };
}

/**
 * Qwen2's window (transformers 5 Qwen2Config / modeling_qwen2.py): sliding_window counts only with use_sliding_window;
 * then the layers whose layer_types entry is "sliding_attention" slide (layer_types defaults to the layers at index >=
 * max_window_layers, default 28). Returns the window when any layer slides (medlora then refuses longer inputs, as for
 * Mistral), else null.
 */
function qwen2SlidingWindow(f: Fields, file: string, layers: number): number | null {
  const use = f.bool('use_sliding_window', false);
  const win = f.optInt('sliding_window');
  const maxWindowLayers = f.has('max_window_layers')
    ? f.posInt('max_window_layers')
    : (f.raw_('max_window_layers'), 28);
  const lt = f.raw_('layer_types');
  let types: string[];
  if (lt === undefined || lt === null) {
    types = Array.from({ length: layers }, (_, i) =>
      use && win !== undefined && i >= maxWindowLayers ? 'sliding_attention' : 'full_attention',
    );
  } else {
    if (
      !Array.isArray(lt) ||
      lt.length !== layers ||
      !lt.every((t) => t === 'full_attention' || t === 'sliding_attention')
    ) {
      f.fail('layer_types', `a list of ${layers} "full_attention" / "sliding_attention" entries`);
    }
    types = lt as string[];
  }
  if (!use || win === undefined) return null;
  return types.includes('sliding_attention') ? win : null;
}

function parseStableLm(f: Fields, file: string, epoch: boolean, warnings: string[]): StableLmConfig {
  if (epoch) f.raw_('num_heads'); // stablelm_epoch duplicates num_attention_heads
  const shape = rotaryDecoderShape(f, file);
  // the remote-code stablelm_epoch config names two fields differently (norm_eps, rope_pct)
  const layer_norm_eps = epoch && f.has('norm_eps') ? f.posNum('norm_eps', 1e-5) : f.posNum('layer_norm_eps', 1e-5);
  const max_position_embeddings = f.posInt('max_position_embeddings', 4096);
  const rope = readRope(f, file, warnings, max_position_embeddings);
  // transformers 5 also stores partial_rotary_factor inside rope_parameters, where it wins over the top-level key
  const topPartial = epoch && f.has('rope_pct') ? f.num01('rope_pct', 0.25) : f.num01('partial_rotary_factor', 0.25);
  if (
    rope.partial_rotary_factor !== undefined &&
    f.has('partial_rotary_factor') &&
    rope.partial_rotary_factor !== topPartial
  ) {
    warnings.push(
      `${file}: rope_parameters.partial_rotary_factor ${rope.partial_rotary_factor} and "partial_rotary_factor" ${topPartial} disagree; using rope_parameters'`,
    );
  }
  const partial = rope.partial_rotary_factor ?? topPartial;
  const qk_layernorm = f.bool('qk_layernorm', false);
  if (qk_layernorm)
    throw new MedloraError(`${file}: qk_layernorm=true (per-head q/k LayerNorms, StableLM-2 12B) is not supported`);
  if (epoch) {
    const s = f.raw_('rotary_scaling_factor');
    if (s !== undefined && s !== 1 && s !== 1.0)
      throw new MedloraError(`${file}: rotary_scaling_factor ${JSON.stringify(s)} is not supported (only 1.0)`);
  }
  return {
    model_type: 'stablelm',
    ...common(f, false, warnings, file),
    ...shape,
    max_position_embeddings,
    layer_norm_eps,
    rope_theta: rope.rope_theta,
    rope_scaling: rope.rope_scaling,
    partial_rotary_factor: partial,
    use_qkv_bias: f.bool('use_qkv_bias', false),
    qk_layernorm,
    use_parallel_residual: f.bool('use_parallel_residual', false),
  };
}

function parseGpt2(f: Fields, file: string, warnings: string[]): Gpt2Config {
  const n_embd = f.posInt('n_embd');
  const n_head = f.posInt('n_head');
  if (n_embd % n_head !== 0) throw new MedloraError(`${file}: n_embd ${n_embd} is not divisible by n_head ${n_head}`);
  f.raw_('n_ctx'); // legacy alias of n_positions
  return {
    model_type: 'gpt2',
    ...common(f, true, warnings, file), // PretrainedConfig default: GPT-2 ties lm_head to wte
    n_embd,
    n_layer: f.posInt('n_layer'),
    n_head,
    n_positions: f.posInt('n_positions', 1024),
    n_inner: f.has('n_inner') ? f.posInt('n_inner') : (f.raw_('n_inner'), 4 * n_embd),
    head_dim: n_embd / n_head,
    activation_function: f.str('activation_function', 'gelu_new'),
    layer_norm_epsilon: f.posNum('layer_norm_epsilon', 1e-5),
    scale_attn_weights: f.bool('scale_attn_weights', true),
    scale_attn_by_inverse_layer_idx: notImplemented(f, file, 'scale_attn_by_inverse_layer_idx'),
    reorder_and_upcast_attn: notImplemented(f, file, 'reorder_and_upcast_attn'),
  };
}

/** A boolean key medlora reads but implements only when false: true is an error naming it. */
function notImplemented(f: Fields, file: string, key: string): false {
  if (f.bool(key, false)) throw new MedloraError(`${file}: ${key}=true is not supported`);
  return false;
}

/** Parse a config.json object. `file` names it in errors. */
export function parseModelConfig(raw: unknown, file = 'config.json'): ParsedConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new MedloraError(`${file}: expected a JSON object`);
  const obj = raw as Record<string, unknown>;
  const f = new Fields(file, obj);
  const t = obj.model_type;
  const warnings: string[] = [];
  let config: ModelConfig;
  switch (t) {
    case 'llama':
    case 'mistral':
    case 'qwen2':
      config = parseLlamaLike(f, file, t, warnings);
      break;
    case 'stablelm':
    case 'stablelm_epoch':
      config = parseStableLm(f, file, t === 'stablelm_epoch', warnings);
      break;
    case 'gpt2':
      config = parseGpt2(f, file, warnings);
      break;
    default:
      throw new MedloraError(
        `${file}: model_type ${JSON.stringify(t)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(', ')} (stablelm_epoch is read as stablelm)`,
      );
  }
  const harmless = new Set(HARMLESS_KEYS[config.model_type] ?? []);
  const rest = Object.keys(obj)
    .filter((k) => !f.used.has(k) && !GENERIC_KEYS.has(k) && !harmless.has(k))
    .sort();
  // known to change the math and not implemented for this architecture: an error unless neutral
  for (const k of rest) {
    const n = NUMERIC_KEYS[k];
    if (n && !n.neutral(obj[k])) {
      throw new MedloraError(
        `${file}: "${k}" = ${JSON.stringify(obj[k])} (${n.what}) is not supported for model_type ${String(t)}; computing without it would silently differ from the model`,
      );
    }
  }
  const unknownKeys = rest.filter((k) => !NUMERIC_KEYS[k]);
  if (unknownKeys.length) {
    warnings.push(
      `${file}: unknown key${unknownKeys.length > 1 ? 's' : ''} ${unknownKeys.map((k) => `"${k}"`).join(', ')} ignored (not read by medlora's ${config.model_type}; if ${unknownKeys.length > 1 ? 'they change' : 'it changes'} the model's math, results will differ from transformers)`,
    );
  }
  return { config, unknownKeys, warnings };
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
  const parsed = parseModelConfig(raw, file);
  for (const w of parsed.warnings) warn(w);
  return parsed;
}

/** Size of the rotary part of each head (stablelm rotates only partial_rotary_factor of it). */
export function rotaryDim(c: LlamaLikeConfig | StableLmConfig): number {
  if (c.model_type !== 'stablelm') return c.head_dim;
  return Math.floor(c.head_dim * c.partial_rotary_factor);
}

// A Hugging Face checkpoint (+ an optional PEFT LoRA adapter merged in) -> one GGUF file llama.cpp loads; or the adapter
// alone as a llama.cpp LoRA GGUF. Llama family (llama, mistral -> arch "llama"; qwen2 -> arch "qwen2"), GPT-2 (arch
// "gpt2": Conv1D weights transposed as conversion/gpt2.py does) and StableLM (arch "stablelm": LayerNorm weights and
// biases, partial NEOX rotary, no q/k permutation; conversion/stablelm.py, llama.cpp src/models/stablelm.cpp).
// Sources for every name and rule here (read, not copied): llama.cpp convert_hf_to_gguf.py / conversion/llama.py
// (q/k row permutation `permute`, llama3 `rope_freqs` factors, hparams keys), conversion/base.py (1-D and *_norm tensors
// stay F32, q8_0 falls back to F16 when a row is not a multiple of 32), convert_lora_to_gguf.py (general.type=adapter,
// adapter.type=lora, adapter.lora.alpha, "<base>.lora_a"/"lora_b"), gguf-py constants.py (keys, LlamaFileType) and
// tensor_mapping.py (HF -> GGUF tensor names), src/llama-adapter.cpp (scale = alpha / rank).
// Over ~400 lines on purpose: one table of tensor names and metadata keys per architecture beside the writer that uses
// them; splitting would scatter the key lists.
import { basename, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { bf16ToF32, bytesAsF32, bytesAsU16, f16ToF32 } from '../io/dtype.js';
import {
  loadModelConfig,
  rotaryDim,
  type Gpt2Config,
  type LlamaLikeConfig,
  type ModelConfig,
  type StableLmConfig,
} from '../io/config.js';
import { loraScale, readAdapter, type Adapter } from '../io/peft.js';
import { openCheckpoint, type TensorSource } from '../io/safetensors.js';
import { checkBaseCopiesInCheckpoint } from '../adapt/merge-checkpoint.js';
import { fromBytes, scope } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';
import { encodeTensor, Q8_0_BLOCK } from './gguf-quant.js';
import { ggufVocab, type GgufVocab } from './gguf-tokenizer.js';
import { gguf, writeGguf, type GgmlType, type GgufTensor, type GgufValue } from './gguf-writer.js';

export const EXPORT_TYPES = ['f32', 'f16', 'bf16', 'q8_0'] as const;
export type ExportType = (typeof EXPORT_TYPES)[number];

const GGML_OF: Record<ExportType, GgmlType> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0' };
/** gguf-py LlamaFileType. */
const FILE_TYPE: Record<ExportType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
/** model_type -> llama.cpp architecture, and whether q/k rows are permuted to llama.cpp's interleaved RoPE layout. */
const ARCH: Record<string, { arch: string; permute: boolean }> = {
  llama: { arch: 'llama', permute: true },
  mistral: { arch: 'llama', permute: true },
  qwen2: { arch: 'qwen2', permute: false },
  gpt2: { arch: 'gpt2', permute: false },
  stablelm: { arch: 'stablelm', permute: false },
};

export interface ExportGgufOptions {
  /** base model folder (config.json + safetensors); for --lora-only, the base the adapter was trained on */
  model: string;
  adapter?: string;
  /** tokenizer folder (default: model) */
  tokenizer?: string;
  out: string;
  type: ExportType;
  /** write only the adapter, as a llama.cpp LoRA GGUF */
  loraOnly?: boolean;
  /** general.name (default: the model folder's name) */
  name?: string;
  onTensor?: (done: number, total: number, name: string) => void;
}

export interface ExportGgufReport {
  out: string;
  kind: 'model' | 'adapter';
  arch: string;
  type: ExportType;
  tensors: number;
  bytes: number;
  /** tensor count per stored ggml type */
  byType: Record<string, number>;
  /** tensors kept at another type than requested, with why */
  fallbacks: string[];
  /** LoRA modules merged (model) or written (adapter) */
  loraModules: string[];
  /** context length written */
  contextLength?: number;
  vocab?: { model: string; pre: string | undefined; tokens: number; padded: number };
  notes: string[];
  /** where llama.cpp would compute something else than medlora (printed as warnings by the CLI) */
  warnings: string[];
  /** the tokenizer used (for Modelfile generation) */
  gguf?: GgufVocab;
}

const LAYER_PART: Record<string, string> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** HF tensor name -> GGUF tensor name (gguf-py tensor_mapping.py, llama family); null = not stored (rotary buffers). */
export function ggufTensorName(hf: string): string | null | undefined {
  if (/(^|\.)rotary_emb\.inv_freq$/.test(hf)) return null;
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  const part = m ? LAYER_PART[m[2]!] : undefined;
  return m && part ? `blk.${m[1]}.${part}.${m[3]}` : undefined;
}

const GPT2_PART: Record<string, string> = {
  ln_1: 'attn_norm',
  'attn.c_attn': 'attn_qkv',
  'attn.c_proj': 'attn_output',
  ln_2: 'ffn_norm',
  'mlp.c_fc': 'ffn_up',
  'mlp.c_proj': 'ffn_down',
};

/**
 * GPT-2 HF tensor name (with or without the "transformer." prefix) -> GGUF name (gguf-py tensor_mapping.py, arch gpt2);
 * null = not stored (the causal-mask buffers attn.bias / attn.masked_bias).
 */
export function gpt2TensorName(hf: string): string | null | undefined {
  const n = hf.startsWith('transformer.') ? hf.slice('transformer.'.length) : hf;
  if (/^h\.\d+\.attn\.(masked_)?bias$/.test(n)) return null;
  if (n === 'wte.weight') return 'token_embd.weight';
  if (n === 'wpe.weight') return 'position_embd.weight';
  if (n === 'ln_f.weight' || n === 'ln_f.bias') return `output_norm.${n.slice(5)}`;
  if (n === 'lm_head.weight') return 'output.weight';
  const m = /^h\.(\d+)\.(.+)\.(weight|bias)$/.exec(n);
  const part = m ? GPT2_PART[m[2]!] : undefined;
  return m && part ? `blk.${m[1]}.${part}.${m[3]}` : undefined;
}

/** GPT-2's Conv1D weights are stored [in, out]; llama.cpp (like every Linear) wants [out, in] (conversion/gpt2.py). */
function gpt2Transposed(hf: string): boolean {
  return /(^|\.)h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(hf);
}

/** [rows, cols] row-major -> [cols, rows]. */
function transpose2d(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

/** What differs per architecture: names, layout, metadata, extra tensors. */
interface ArchSpec {
  arch: string;
  name(hf: string): string | null | undefined;
  /** q/k row permutation heads for a GGUF tensor name (0 = none) */
  permuteHeads(name: string): number;
  /** stored [in, out] in the checkpoint */
  transposed(hf: string): boolean;
  /** the input embedding a LoRA on a tied lm_head is added to */
  embedKey: string;
  /** llama.cpp requires output.weight even when the checkpoint ties it to the embedding (stablelm) */
  untieOutput: boolean;
  vocabSize: number;
  tied: boolean;
  /** `warnings`: numerics llama.cpp computes differently from medlora in some range, said out loud */
  metadata(warnings: string[]): { md: Array<[string, GgufValue]>; ctx: number };
  extra(): GgufTensor[];
}

function archSpec(c: ModelConfig, file: string, keys: string[]): ArchSpec {
  if (c.model_type === 'gpt2') return gpt2Spec(c, file, keys);
  if (c.model_type === 'stablelm') return stableLmSpec(c, file);
  const lc = llamaConfig(c, file);
  const { arch, permute } = ARCH[lc.model_type]!;
  return {
    arch,
    vocabSize: lc.vocab_size,
    tied: lc.tie_word_embeddings,
    embedKey: 'model.embed_tokens.weight',
    untieOutput: false,
    name: ggufTensorName,
    permuteHeads: (n) =>
      !permute
        ? 0
        : n.includes('.attn_q.')
          ? lc.num_attention_heads
          : n.includes('.attn_k.')
            ? lc.num_key_value_heads
            : 0,
    transposed: () => false,
    metadata: (warnings) => archMetadata(lc, arch, warnings),
    extra: () => {
      const factors = llama3RopeFactors(lc);
      return factors
        ? [
            {
              name: 'rope_freqs.weight',
              shape: [factors.length],
              type: 'F32',
              data: () => encodeTensor(factors, 'F32', factors.length, 'rope_freqs'),
            },
          ]
        : [];
    },
  };
}

function gpt2Spec(c: Gpt2Config, file: string, keys: string[]): ArchSpec {
  // llama.cpp's gpt2 graph: tanh-approximated GELU, attention scaled by 1/sqrt(head_dim), no per-layer scaling
  if (!['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'].includes(c.activation_function)) {
    throw new MedloraError(
      `${file}: activation_function "${c.activation_function}" is not the tanh GELU llama.cpp's gpt2 graph computes`,
    );
  }
  if (!c.scale_attn_weights || c.scale_attn_by_inverse_layer_idx) {
    throw new MedloraError(
      `${file}: scale_attn_weights=false or scale_attn_by_inverse_layer_idx=true is not what llama.cpp's gpt2 graph computes`,
    );
  }
  return {
    arch: 'gpt2',
    vocabSize: c.vocab_size,
    tied: c.tie_word_embeddings,
    embedKey: keys.includes('transformer.wte.weight') ? 'transformer.wte.weight' : 'wte.weight',
    untieOutput: false,
    name: gpt2TensorName,
    permuteHeads: () => 0,
    transposed: gpt2Transposed,
    metadata: () => ({
      md: [
        ['gpt2.context_length', gguf.u32(c.n_positions)],
        ['gpt2.embedding_length', gguf.u32(c.n_embd)],
        ['gpt2.feed_forward_length', gguf.u32(c.n_inner)],
        ['gpt2.block_count', gguf.u32(c.n_layer)],
        ['gpt2.attention.head_count', gguf.u32(c.n_head)],
        ['gpt2.attention.layer_norm_epsilon', gguf.f32(c.layer_norm_epsilon)],
      ],
      ctx: c.n_positions,
    }),
    extra: () => [],
  };
}

/** StableLM HF name -> GGUF name: the llama-family names plus the LayerNorm biases (gguf-py tensor_mapping.py). */
export function stableLmTensorName(hf: string): string | null | undefined {
  return hf === 'model.norm.bias' ? 'output_norm.bias' : ggufTensorName(hf);
}

/**
 * StableLM (conversion/stablelm.py set_gguf_parameters; llama.cpp src/models/stablelm.cpp): LayerNorm (weight + bias)
 * before attention and MLP, or one LayerNorm feeding both with the parallel residual (llama.cpp takes that variant from
 * the absence of ffn_norm, as HF has no post_attention_layernorm then); q/k/v biases are optional tensors; RoPE is NEOX
 * style (rotate_half) over the first rope.dimension_count features of each head, so no q/k row permutation.
 */
function stableLmSpec(c: StableLmConfig, file: string): ArchSpec {
  // qk_layernorm (StableLM-2 12B) is refused when config.json is read (medlora cannot run it, so cannot check an export)
  if (c.hidden_act !== 'silu')
    throw new MedloraError(`${file}: hidden_act "${c.hidden_act}" is not SiLU; llama.cpp's stablelm graph uses SiLU`);
  if (c.head_dim * c.num_attention_heads !== c.hidden_size)
    throw new MedloraError(
      `${file}: head_dim ${c.head_dim} x num_attention_heads ${c.num_attention_heads} != hidden_size ${c.hidden_size}; llama.cpp's stablelm graph needs them equal`,
    );
  const rot = rotaryDim(c);
  if (rot < 2 || rot % 2 !== 0)
    throw new MedloraError(
      `${file}: partial_rotary_factor ${c.partial_rotary_factor} x head_dim ${c.head_dim} gives ${rot} rotary features; llama.cpp needs an even count >= 2`,
    );
  const s = c.rope_scaling;
  if (s && s.rope_type !== 'linear')
    throw new MedloraError(
      `${file}: rope_scaling type "${s.rope_type}" on a stablelm model cannot be written for llama.cpp (only linear)`,
    );
  return {
    arch: 'stablelm',
    vocabSize: c.vocab_size,
    tied: c.tie_word_embeddings,
    embedKey: 'model.embed_tokens.weight',
    untieOutput: true,
    name: stableLmTensorName,
    permuteHeads: () => 0,
    transposed: () => false,
    metadata: () => {
      const md: Array<[string, GgufValue]> = [
        ['stablelm.context_length', gguf.u32(c.max_position_embeddings)],
        ['stablelm.embedding_length', gguf.u32(c.hidden_size)],
        ['stablelm.block_count', gguf.u32(c.num_hidden_layers)],
        ['stablelm.feed_forward_length', gguf.u32(c.intermediate_size)],
        ['stablelm.rope.dimension_count', gguf.u32(rot)],
        ['stablelm.rope.freq_base', gguf.f32(c.rope_theta)],
        ['stablelm.attention.head_count', gguf.u32(c.num_attention_heads)],
        ['stablelm.attention.head_count_kv', gguf.u32(c.num_key_value_heads)],
        ['stablelm.use_parallel_residual', gguf.bool(c.use_parallel_residual)],
        ['stablelm.attention.layer_norm_epsilon', gguf.f32(c.layer_norm_eps)],
      ];
      if (s?.rope_type === 'linear')
        md.push(
          ['stablelm.rope.scaling.type', gguf.str('linear')],
          ['stablelm.rope.scaling.factor', gguf.f32(s.factor)],
        );
      return { md, ctx: c.max_position_embeddings };
    },
    extra: () => [],
  };
}

/**
 * llama.cpp's row order for q/k projections (conversion/llama.py `permute`): HF stores each head's rotary pairs as
 * (first half, second half); llama.cpp's RoPE rotates adjacent rows. Per head, rows (j, i) -> (i, j) for j in {0, 1},
 * i < head_dim / 2. `x` is row-major [heads * head_dim, cols]; returns a new array.
 */
export function permuteQK(x: Float32Array, heads: number, cols: number): Float32Array {
  const rows = x.length / cols;
  if (!Number.isInteger(rows) || rows % (heads * 2) !== 0)
    throw new MedloraError(`q/k permute: ${rows} rows do not split into ${heads} heads of pairs`);
  const hd = rows / heads,
    half = hd / 2;
  const out = new Float32Array(x.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * hd + j * half + i,
          dst = h * hd + i * 2 + j;
        out.set(x.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

/** A checkpoint tensor as float32 values (F32, BF16, F16 sources). */
function readF32(src: TensorSource, name: string): Float32Array {
  const info = src.info(name);
  const bytes = src.read(name);
  switch (info.dtype) {
    case 'F32':
      return new Float32Array(bytesAsF32(bytes));
    case 'BF16':
      return bf16ToF32(bytesAsU16(bytes));
    case 'F16':
      return f16ToF32(bytesAsU16(bytes));
    default:
      throw new MedloraError(
        `${info.file}: tensor '${name}' has dtype ${info.dtype}; GGUF export reads F32, BF16 or F16 weights`,
      );
  }
}

/** B A * scaling ([out, in], float32) through the engine, as medlora merge computes it. */
function loraDelta(ad: Adapter, module: string, scaling: number): Float32Array {
  const lm = ad.modules.get(module)!;
  const f32 = (info: typeof lm.A): Float32Array => readF32(ad.tensors, info.name);
  return scope(() => {
    const A = fromBytes(new Uint8Array(f32(lm.A).buffer), 'f32', lm.A.shape);
    const B = fromBytes(new Uint8Array(f32(lm.B).buffer), 'f32', lm.B.shape);
    return new Float32Array(bytesAsF32(B.matmul(A).mul(scaling).toBytes()));
  });
}

function llamaConfig(c: ModelConfig, file: string): LlamaLikeConfig {
  if (!(c.model_type in ARCH)) {
    throw new MedloraError(
      `${file}: model_type "${c.model_type}" cannot be exported to GGUF (supported: ${Object.keys(ARCH).join(', ')})`,
    );
  }
  return c as LlamaLikeConfig;
}

/** Llama-3 rope_freqs (conversion/llama.py generate_extra_tensors): one factor per rotary pair that divides the frequency. */
export function llama3RopeFactors(c: LlamaLikeConfig): Float32Array | undefined {
  const s = c.rope_scaling;
  if (!s || s.rope_type !== 'llama3') return undefined;
  const dim = c.head_dim;
  const lowWavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const highWavelen = s.original_max_position_embeddings / s.high_freq_factor;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / c.rope_theta ** ((2 * i) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth =
        (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** Architecture metadata (conversion/base.py TextModel.set_gguf_parameters + LlamaModel.set_gguf_parameters). */
function archMetadata(
  c: LlamaLikeConfig,
  arch: string,
  warnings: string[],
): { md: Array<[string, GgufValue]>; ctx: number } {
  let ctx = c.max_position_embeddings;
  if (c.sliding_window !== null && c.sliding_window < ctx) {
    // llama.cpp's llama / qwen2 graphs have no sliding window (conversion/llama.py writes none, and context_length =
    // max_position_embeddings: beyond the window llama.cpp would silently compute full attention, which is not the
    // model). medlora itself refuses inputs longer than the window, so the GGUF says what is exact: context_length =
    // the window (llama.cpp warns when a context larger than that is requested), with a warning here.
    warnings.push(
      `context_length set to sliding_window ${c.sliding_window}, not max_position_embeddings ${ctx}: llama.cpp has no sliding-window attention for arch ${arch}, so beyond ${c.sliding_window} tokens it would compute full attention, which is not this model`,
    );
    ctx = c.sliding_window;
  }
  const md: Array<[string, GgufValue]> = [
    [`${arch}.context_length`, gguf.u32(ctx)],
    [`${arch}.embedding_length`, gguf.u32(c.hidden_size)],
    [`${arch}.block_count`, gguf.u32(c.num_hidden_layers)],
    [`${arch}.feed_forward_length`, gguf.u32(c.intermediate_size)],
    [`${arch}.attention.head_count`, gguf.u32(c.num_attention_heads)],
    [`${arch}.attention.head_count_kv`, gguf.u32(c.num_key_value_heads)],
    [`${arch}.rope.freq_base`, gguf.f32(c.rope_theta)],
    [`${arch}.attention.layer_norm_rms_epsilon`, gguf.f32(c.rms_norm_eps)],
    [`${arch}.vocab_size`, gguf.u32(c.vocab_size)],
    [`${arch}.rope.dimension_count`, gguf.u32(c.head_dim)],
  ];
  if (c.head_dim * c.num_attention_heads !== c.hidden_size) {
    md.push(
      [`${arch}.attention.key_length`, gguf.u32(c.head_dim)],
      [`${arch}.attention.value_length`, gguf.u32(c.head_dim)],
    );
  }
  if (c.rope_scaling?.rope_type === 'linear') {
    md.push(
      [`${arch}.rope.scaling.type`, gguf.str('linear')],
      [`${arch}.rope.scaling.factor`, gguf.f32(c.rope_scaling.factor)],
    );
  }
  if (c.hidden_act !== 'silu')
    throw new MedloraError(
      `config.json: hidden_act "${c.hidden_act}" is not SiLU; llama.cpp's ${arch} graph uses SiLU`,
    );
  return { md, ctx };
}

/** GGUF sort order: token_embd, blocks in layer order, output_norm, output, rope_freqs. */
function orderKey(name: string): string {
  const m = /^blk\.(\d+)\.(.*)$/.exec(name);
  if (m) return `1.${m[1]!.padStart(6, '0')}.${m[2]}`;
  return name === 'token_embd.weight' ? '0' : `2.${name}`;
}

function summary(tensors: GgufTensor[]): Record<string, number> {
  const by: Record<string, number> = {};
  for (const t of tensors) by[t.type] = (by[t.type] ?? 0) + 1;
  return by;
}

/** Export a model (merged with `adapter` when given) or, with loraOnly, the adapter alone. */
export function exportGguf(o: ExportGgufOptions): ExportGgufReport {
  if (!EXPORT_TYPES.includes(o.type))
    throw new MedloraError(`export gguf: type must be one of ${EXPORT_TYPES.join(', ')}, got "${o.type}"`);
  if (existsSync(o.out) && resolve(o.out) === resolve(o.model))
    throw new MedloraError(`export gguf: out ${o.out} is the model folder`);
  const cfgFile = `${o.model}/config.json`;
  const src = openCheckpoint(o.model);
  const spec = archSpec(loadModelConfig(o.model).config, cfgFile, src.names());
  const ad = o.adapter !== undefined ? readAdapter(o.adapter) : undefined;
  if (ad) {
    // PEFT's base-weight copies (lm_head.base_layer.weight) must equal the model's; anything else is refused there
    checkBaseCopiesInCheckpoint(ad, o.adapter!, src, spec.tied);
    if (ad.config.bias !== 'none')
      throw new MedloraError(`${o.adapter}: bias=${JSON.stringify(ad.config.bias)} is not supported (only "none")`);
  }
  return o.loraOnly ? exportAdapter(o, spec, src, ad) : exportModel(o, spec, src, ad);
}

function exportModel(
  o: ExportGgufOptions,
  spec: ArchSpec,
  src: TensorSource,
  ad: Adapter | undefined,
): ExportGgufReport {
  const arch = spec.arch;
  const notes: string[] = [];
  const vocab = ggufVocab(o.tokenizer ?? o.model, spec.vocabSize);
  notes.push(...vocab.notes);
  if (vocab.padded)
    notes.push(
      `${vocab.padded} token ids past the tokenizer's vocabulary padded as [PAD<id>] (vocab_size ${spec.vocabSize})`,
    );
  const scaling = ad ? loraScale(ad.config) : 0;

  // HF name -> where its values come from, and which LoRA (if any) is merged in
  const plan = new Map<string, { from: string; lora?: string }>();
  for (const hf of src.names()) {
    const g = spec.name(hf);
    if (g === undefined)
      throw new MedloraError(
        `${src.label}: tensor '${hf}' has no GGUF name for arch ${arch} (not a ${arch} checkpoint?)`,
      );
    if (g !== null) plan.set(hf, { from: hf });
  }
  for (const m of ad?.modules.keys() ?? []) {
    const key = `${m}.weight`;
    const p = plan.get(key);
    if (p) {
      p.lora = m;
      continue;
    }
    if (m === 'lm_head' && spec.tied && plan.has(spec.embedKey)) {
      plan.set(key, { from: spec.embedKey, lora: m }); // a LoRA on the tied head: write a separate output.weight
      notes.push('the adapter targets the tied lm_head: wrote a separate output.weight (embedding + LoRA update)');
      continue;
    }
    throw new MedloraError(
      `export gguf: the adapter has LoRA weights for '${m}' but ${src.label} has no tensor '${key}' (adapter for another model?)`,
    );
  }
  if (spec.untieOutput && spec.tied && !plan.has('lm_head.weight') && plan.has(spec.embedKey)) {
    plan.set('lm_head.weight', { from: spec.embedKey }); // llama.cpp's graph for this arch has no tied-output fallback
    notes.push(`tied lm_head: output.weight written as a copy of the embedding (llama.cpp's ${arch} graph needs it)`);
  }

  const fallbacks: string[] = [];
  const tensors: GgufTensor[] = [];
  for (const [hf, p] of plan) {
    const name = spec.name(hf)!;
    const info = src.info(p.from);
    const transposed = spec.transposed(hf);
    const shape = transposed ? [...info.shape].reverse() : [...info.shape];
    const rowLen = shape[shape.length - 1]!;
    let type: GgmlType = GGML_OF[o.type];
    if (shape.length <= 1 || name.endsWith('_norm.weight')) type = 'F32';
    else if (type === 'Q8_0' && rowLen % Q8_0_BLOCK !== 0) {
      type = 'F16';
      fallbacks.push(`${name}: rows of ${rowLen} are not a multiple of ${Q8_0_BLOCK}, stored F16`);
    }
    const heads = spec.permuteHeads(name);
    tensors.push({
      name,
      shape,
      type,
      data: () => {
        let x = readF32(src, p.from);
        if (transposed) x = transpose2d(x, info.shape[0]!, info.shape[1]!);
        if (p.lora) {
          const d = loraDelta(ad!, p.lora, scaling);
          if (d.length !== x.length)
            throw new MedloraError(
              `export gguf: LoRA '${p.lora}' update has ${d.length} values but '${p.from}' has ${x.length}`,
            );
          for (let i = 0; i < x.length; i++) x[i] = x[i]! + d[i]!;
        }
        if (heads) x = permuteQK(x, heads, shape.length === 1 ? 1 : rowLen);
        return encodeTensor(x, type, rowLen, `${src.label}: '${hf}'`);
      },
    });
  }
  tensors.push(...spec.extra());
  tensors.sort((a, b) => (orderKey(a.name) < orderKey(b.name) ? -1 : 1));

  const warnings: string[] = [];
  const { md: archMd, ctx } = spec.metadata(warnings);
  const md: Array<[string, GgufValue]> = [
    ['general.architecture', gguf.str(arch)],
    ['general.type', gguf.str('model')],
    ['general.name', gguf.str(o.name ?? basename(resolve(o.model)))],
    ...archMd,
    ['general.file_type', gguf.u32(FILE_TYPE[o.type])],
    ['general.quantization_version', gguf.u32(2)],
    ...vocab.metadata,
  ];
  const r = writeGguf(o.out, md, tensors, (done, total, t) => o.onTensor?.(done, total, t.name));
  return {
    out: o.out,
    kind: 'model',
    arch,
    type: o.type,
    tensors: r.tensors,
    bytes: r.bytes,
    byType: summary(tensors),
    fallbacks,
    loraModules: [...(ad?.modules.keys() ?? [])],
    contextLength: ctx,
    vocab: { model: vocab.model, pre: vocab.pre, tokens: vocab.tokens.length, padded: vocab.padded },
    notes,
    warnings,
    gguf: vocab,
  };
}

function exportAdapter(
  o: ExportGgufOptions,
  spec: ArchSpec,
  src: TensorSource,
  ad: Adapter | undefined,
): ExportGgufReport {
  const arch = spec.arch;
  if (!ad) throw new MedloraError('export gguf: lora-only needs an adapter folder');
  if (o.type === 'q8_0')
    throw new MedloraError('export gguf: a LoRA-only GGUF is written as f32, f16 or bf16 (not q8_0)');
  const type = GGML_OF[o.type];
  const r = ad.config.r;
  const scaling = loraScale(ad.config);
  const tensors: GgufTensor[] = [];
  for (const [m, lm] of ad.modules) {
    const hf = `${m}.weight`;
    const name = spec.name(hf);
    if (!name) throw new MedloraError(`${o.adapter}: LoRA module '${m}' has no GGUF tensor name for arch ${arch}`);
    if (!src.has(hf)) {
      throw new MedloraError(
        m === 'lm_head'
          ? `${o.adapter}: a LoRA on lm_head, but ${o.model} ties lm_head to the embedding (no output.weight in the base GGUF for llama.cpp to apply it to); export the merged model instead`
          : `${o.adapter}: LoRA module '${m}' but ${src.label} has no tensor '${hf}' (adapter for another model?)`,
      );
    }
    const base = spec.transposed(hf) ? [...src.info(hf).shape].reverse() : src.info(hf).shape;
    if (base[0] !== lm.outFeatures || base[1] !== lm.inFeatures) {
      throw new MedloraError(
        `${o.adapter}: LoRA '${m}' is [${lm.outFeatures}, ${lm.inFeatures}] but '${hf}' is [${base.join(', ')}]`,
      );
    }
    const heads = spec.permuteHeads(name);
    const stem = name.replace(/\.weight$/, '');
    // lora_a [r, in]: unchanged; lora_b [out, r]: its rows are output rows, so q/k get the same permutation as the weight
    tensors.push({
      name: `${stem}.weight.lora_a`,
      shape: [r, lm.inFeatures],
      type,
      data: () => encodeTensor(readF32(ad.tensors, lm.A.name), type, lm.inFeatures, lm.A.name),
    });
    tensors.push({
      name: `${stem}.weight.lora_b`,
      shape: [lm.outFeatures, r],
      type,
      data: () => {
        let b = readF32(ad.tensors, lm.B.name);
        if (heads) b = permuteQK(b, heads, r);
        return encodeTensor(b, type, r, lm.B.name);
      },
    });
  }
  tensors.sort((a, b) => (orderKey(a.name) < orderKey(b.name) ? -1 : 1));
  // llama.cpp scales by alpha / rank (rank = lora_b's inner size r): alpha = scaling * r folds rsLoRA's alpha / sqrt(r)
  const alpha = scaling * r;
  const md: Array<[string, GgufValue]> = [
    ['general.architecture', gguf.str(arch)],
    ['general.type', gguf.str('adapter')],
    ['general.name', gguf.str(o.name ?? basename(resolve(o.adapter!)))],
    ['adapter.type', gguf.str('lora')],
    ['adapter.lora.alpha', gguf.f32(alpha)],
    ['general.file_type', gguf.u32(FILE_TYPE[o.type])],
    ['general.quantization_version', gguf.u32(2)],
  ];
  const notes = ad.config.use_rslora
    ? [`rsLoRA: adapter.lora.alpha = ${alpha} so that llama.cpp's alpha / r equals lora_alpha / sqrt(r) = ${scaling}`]
    : [];
  const res = writeGguf(o.out, md, tensors, (done, total, t) => o.onTensor?.(done, total, t.name));
  return {
    out: o.out,
    kind: 'adapter',
    arch,
    type: o.type,
    tensors: res.tensors,
    bytes: res.bytes,
    byType: summary(tensors),
    fallbacks: [],
    loraModules: [...ad.modules.keys()],
    notes,
    warnings: [],
  };
}

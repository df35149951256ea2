// A tiny random Llama with a byte-level BPE trained on the test's own texts, for the end-to-end train / eval runs
// (tasks/icsr-train, train/ddi-demo, train/model-card): N(0, 0.02) weights (manualSeed 0), unit norms, tied embeddings,
// so the logits stay small enough for CI.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, ones, randn, type Tensor } from '../src/tensor/index.js';
import { writeSafetensors, type TensorData } from '../src/io/safetensors.js';
import { trainBpe, writeTrainedTokenizer } from '../src/tokenize/bpe-train.js';

export interface TinyLlamaShape {
  /** BPE vocabulary to train */
  bpeVocab: number;
  /** the model's vocab_size (default: the trained BPE's size) */
  vocab?: number;
  hidden: number;
  intermediate: number;
  layers: number;
  maxPositions: number;
}

/** Write config.json, model.safetensors and the tokenizer files of a tiny Llama (4 heads, 2 KV heads) into `dir`. */
export function writeTinyLlama(dir: string, texts: string[], s: TinyLlamaShape): void {
  mkdirSync(dir, { recursive: true });
  const bpe = trainBpe(texts, { vocabSize: s.bpeVocab });
  writeTrainedTokenizer(dir, bpe, { addBos: true });
  const V = s.vocab ?? bpe.vocab.size,
    H = s.hidden,
    I = s.intermediate,
    heads = 4,
    kv = 2,
    hd = H / heads;
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      vocab_size: V,
      hidden_size: H,
      intermediate_size: I,
      num_hidden_layers: s.layers,
      num_attention_heads: heads,
      num_key_value_heads: kv,
      max_position_embeddings: s.maxPositions,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      hidden_act: 'silu',
      bos_token_id: bpe.vocab.get('<s>'),
      eos_token_id: bpe.vocab.get('</s>'),
      torch_dtype: 'float32',
    }),
  );
  manualSeed(0);
  const t: Record<string, TensorData> = {};
  const put = (k: string, x: Tensor): void => {
    t[k] = { dtype: 'F32', shape: [...x.shape], data: x.toBytes() };
    x.dispose();
  };
  put('model.embed_tokens.weight', randn([V, H]).mul(0.02));
  put('model.norm.weight', ones([H]));
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, ones([H]));
    put(`${p}.post_attention_layernorm.weight`, ones([H]));
    put(`${p}.self_attn.q_proj.weight`, randn([heads * hd, H]).mul(0.02));
    put(`${p}.self_attn.k_proj.weight`, randn([kv * hd, H]).mul(0.02));
    put(`${p}.self_attn.v_proj.weight`, randn([kv * hd, H]).mul(0.02));
    put(`${p}.self_attn.o_proj.weight`, randn([H, heads * hd]).mul(0.02));
    put(`${p}.mlp.gate_proj.weight`, randn([I, H]).mul(0.02));
    put(`${p}.mlp.up_proj.weight`, randn([I, H]).mul(0.02));
    put(`${p}.mlp.down_proj.weight`, randn([H, I]).mul(0.02));
  }
  writeSafetensors(join(dir, 'model.safetensors'), t);
}

// NEFTune (Jain et al. 2023, "NEFTune: Noisy Embeddings Improve Instruction Finetuning") as transformers applies it
// (integrations/neftune.py neftune_post_forward_hook, used by Trainer and TRL's SFTTrainer for neftune_noise_alpha):
// while the model is training, the input embedding's output [B, T, d] gets noise uniform in [-m, m] with
// m = alpha / sqrt(T * d) (T the padded sequence length, as transformers computes it); evaluation and generation are
// untouched. Installed as a forward hook on the embedding module (the model code does not change).
import { Embedding } from '../model/layers.js';
import type { Module } from '../model/module.js';
import { rand, type Tensor } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';

/** The input embedding module (HF get_input_embeddings): model.embed_tokens (Llama, Mistral, Qwen2, StableLM) or transformer.wte (GPT-2). */
export function inputEmbedding(model: Module): [string, Embedding] | undefined {
  for (const [path, m] of model.namedModules()) {
    if (m instanceof Embedding && /(^|\.)(embed_tokens|wte)$/.test(path)) return [path, m];
  }
  return undefined;
}

/** The noise bound transformers uses for an embedding output of sequence length T and width d. */
export function neftuneMagnitude(alpha: number, T: number, d: number): number {
  return alpha / Math.sqrt(T * d);
}

/** Add NEFTune noise to `model`'s input embeddings while training; returns a function that removes the hook. */
export function activateNeftune(model: Module, alpha: number): () => void {
  const found = inputEmbedding(model);
  if (!found)
    throw new MedloraError(
      'training.neftune_noise_alpha: this model has no input embedding module (embed_tokens / wte) to add noise to',
    );
  const emb = found[1];
  const plain = emb.forward;
  emb.forward = (ids: Tensor): Tensor => {
    const out = plain.call(emb, ids);
    if (!emb.training) return out;
    // out: [B, T, d]
    const T = out.shape[out.ndim - 2]!,
      d = out.shape[out.ndim - 1]!;
    const m = neftuneMagnitude(alpha, T, d);
    // torch.zeros_like(out).uniform_(-m, m) = -m + 2m * U[0, 1)
    return out.add(
      rand(out.shape, { dtype: out.dtype, device: out.device })
        .mul(2 * m)
        .sub(m),
    );
  };
  return () => {
    emb.forward = plain;
  };
}

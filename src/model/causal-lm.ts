// The contract between a causal language model and everything that uses one (loss, trainer, generation, LoRA):
// callers never need to know which architecture they hold.
import type { Device, Tensor } from '../tensor/index.js';
import type { Module } from './module.js';

/** Per-layer key/value cache for incremental decoding; implemented in src/model/kv-cache.ts. */
export interface KVCacheLike {
  /** number of positions already cached */
  readonly length: number;
}

export interface ForwardOptions {
  /** [B, past + T] with 1 for real tokens and 0 for padding (left padding for generation) */
  attentionMask?: Tensor;
  /** [B, T] explicit positions; default: derived from the attention mask (or 0..T-1 after the cache length) */
  positionIds?: Tensor;
  /** when given, keys/values of this call are appended and attention covers the cached prefix */
  cache?: KVCacheLike;
  /**
   * i64 [N] flat indices into the B*T positions (b * T + t): when given, the final norm and lm_head run only there and
   * forward returns logits [N, vocab] (training needs logits only where a label is scored, HF's logits_to_keep idea
   * generalised to any set of positions)
   */
  outputPositions?: Tensor;
  /**
   * i64 [B, T] segment ids for padding-free packing (HF DataCollatorWithFlattening / TRL padding_free): several
   * examples concatenated in one row attend only to earlier tokens of their own segment (a block-diagonal causal
   * mask). Give positionIds restarting at 0 per segment with it. Not with a cache or an attentionMask.
   */
  segmentIds?: Tensor;
  /**
   * With segmentIds of ONE packed row ([1, T]): the lengths of its consecutive segments, known on the host. Attention
   * then runs per segment with the fused causal kernel (no [T, T] mask, no cross-segment scores); the result is the
   * same as with the mask. Must describe the same segments as segmentIds.
   */
  segmentLengths?: readonly number[];
}

export interface CausalLM extends Module {
  /** the resolved config the model was built from (HF keys) */
  readonly config: { model_type: string; vocab_size: number } & Record<string, unknown>;
  /** where the parameters live (inputs built on the CPU are moved there by forward) */
  readonly device?: Device;
  /** recompute each decoder layer in backward instead of keeping its activations */
  gradientCheckpointing: boolean;
  /** logits [B, T, vocab] ([N, vocab] with outputPositions; float32 unless the model runs in lower precision) */
  forward(inputIds: Tensor, opts?: ForwardOptions): Tensor;
  /** a fresh empty cache for `batch` sequences */
  newCache(batch: number): KVCacheLike;
}

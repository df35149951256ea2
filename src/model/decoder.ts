// The forward pass every decoder-only architecture shares: position ids (from the padding mask, as HF generate
// derives them), the attention mask, rotary tables, the layer loop with an optional KV cache and gradient
// checkpointing. Architectures supply the embedding, the layers and the head.
import { arange, checkpoint, isGradEnabled, scope, type Device, type Tensor } from '../tensor/index.js';
import { MedloraError } from '../util/errors.js';
import type { CausalLM, ForwardOptions, KVCacheLike } from './causal-lm.js';
import { KVCache } from './kv-cache.js';
import { buildAttnMask, packedAttnMask, segmentsAttnMask, ParamModule, type AttnMask, type Rotary } from './layers.js';

/** What one decoder layer gets besides the hidden states. */
export interface LayerContext {
  layerIndex: number;
  mask: AttnMask;
  /** rotary cos/sin [B|1, 1, T, rotary_dim] (absent for learned positions) */
  cos?: Tensor;
  sin?: Tensor;
  cache?: KVCache;
}

/**
 * The attention modules' extension point for fine-tuning methods that add to attention (Adapter-V2's gated prefix,
 * src/adapt/adapter-v2.ts) without a branch in any model file: a wrapper installs `extraAttention`, whose result is
 * added to the attention output before the output projection.
 */
export interface ExtensibleAttention {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** q: [B, heads, T, head_dim] (rotary-embedded) -> a term added to the attention output [B, heads, T, head_dim] */
  extraAttention: ((q: Tensor, ctx: LayerContext) => Tensor) | undefined;
  /** this layer's key / value projections of any rows x [B, L, hidden] -> k, v [B, kv_heads, L, head_dim] (no rotary) */
  projectKeyValue(x: Tensor): { k: Tensor; v: Tensor };
}

export function isExtensibleAttention(m: unknown): m is ExtensibleAttention {
  const a = m as Partial<ExtensibleAttention> | null;
  return !!a && typeof a.projectKeyValue === 'function' && 'extraAttention' in a && typeof a.numHeads === 'number';
}

export interface DecoderLayer {
  forward(x: Tensor, ctx: LayerContext): Tensor;
}

/**
 * Position ids [B|1, T] for T new tokens after `past` cached ones: 0.. in order without a mask; with a padding mask
 * cumsum(mask) - 1 (padding positions set to 1), HF generate's rule, so left-padded rows start at 0.
 */
export function positionIdsFor(
  attentionMask: Tensor | undefined,
  past: number,
  T: number,
  device: Device = 'cpu',
): Tensor {
  if (!attentionMask) return arange(past, past + T, 1, { device }).view([1, T]);
  const m = attentionMask.to('i64');
  const pos = m.cumsum(1).sub(1).maskedFill(m.eq(0), 1);
  return pos.slice(1, past);
}

export abstract class DecoderLM extends ParamModule implements CausalLM {
  abstract readonly config: CausalLM['config'];
  gradientCheckpointing = false;
  /** absent for architectures with learned positions (GPT-2) */
  protected rotary: Rotary | undefined;

  protected abstract layerList(): DecoderLayer[];
  /** token (and learned position) embeddings: [B, T, hidden] */
  protected abstract embed(inputIds: Tensor, positionIds: Tensor): Tensor;
  /** final norm + lm_head over the last dimension: [B, T, vocab] (or [N, vocab] for selected positions) */
  protected abstract head(x: Tensor): Tensor;
  /** the most positions the model supports (checked on every call) */
  protected abstract maxPositions(): number | undefined;
  /** the sliding attention window, when the architecture has one medlora does not implement (inputs must fit) */
  protected slidingWindow(): number | null {
    return null;
  }

  /** where the parameters live (that of the first one) */
  get device(): Device {
    const p = this.namedParameters()[0];
    return p ? p[1].device : 'cpu';
  }

  newCache(batch: number): KVCacheLike {
    return new KVCache(this.layerList().length, batch);
  }

  forward(inputIds: Tensor, opts: ForwardOptions = {}): Tensor {
    if (inputIds.ndim !== 2)
      throw new MedloraError(`forward: input ids must be [batch, seq], got [${inputIds.shape.join(', ')}]`);
    const [B, T] = inputIds.shape as [number, number];
    let cache: KVCache | undefined;
    if (opts.cache !== undefined) {
      if (!(opts.cache instanceof KVCache)) throw new MedloraError('forward: cache must come from model.newCache()');
      cache = opts.cache;
      if (cache.batch !== B) throw new MedloraError(`forward: cache is for batch ${cache.batch}, input has batch ${B}`);
    }
    const past = cache?.length ?? 0;
    const total = past + T;
    const maxPos = this.maxPositions();
    // learned positions end at maxPos; with a padding mask a row's positions count only its real tokens (left-padded
    // generation), so the limit applies to the largest position id, not to the padded width
    const learnedLimit = maxPos !== undefined && !this.rotary ? maxPos : undefined;
    if (learnedLimit !== undefined && total > learnedLimit && !opts.attentionMask && !opts.positionIds) {
      throw new MedloraError(
        `forward: ${total} positions exceed the model's ${learnedLimit} learned position embeddings`,
      );
    }
    const win = this.slidingWindow();
    if (win !== null && total > win) {
      throw new MedloraError(
        `forward: ${total} positions exceed sliding_window ${win}; medlora implements full attention only, so longer inputs are refused rather than computed differently from the model`,
      );
    }
    const out = scope(() => {
      // inputs built on the CPU follow the model to its device
      const device = this.device;
      const onDev = (t: Tensor | undefined): Tensor | undefined =>
        t === undefined || t.device === device ? t : t.to(device);
      const ids = onDev(inputIds)!;
      const attentionMask = onDev(opts.attentionMask);
      const positionIds = onDev(opts.positionIds) ?? positionIdsFor(attentionMask, past, T, device);
      if (learnedLimit !== undefined && total > learnedLimit) {
        const top = (positionIds.max().item() as number) + 1;
        if (top > learnedLimit)
          throw new MedloraError(
            `forward: ${top} positions exceed the model's ${learnedLimit} learned position embeddings`,
          );
      }
      if (opts.segmentIds && (cache || opts.attentionMask))
        throw new MedloraError('forward: segmentIds (packed rows) cannot be combined with a cache or an attentionMask');
      if (opts.segmentLengths && (!opts.segmentIds || B !== 1))
        throw new MedloraError(
          'forward: segmentLengths describe one packed row: give it with segmentIds of shape [1, T]',
        );
      const mask = opts.segmentLengths
        ? segmentsAttnMask(opts.segmentLengths, T)
        : opts.segmentIds
          ? packedAttnMask(onDev(opts.segmentIds)!, device)
          : buildAttnMask(attentionMask, past, T, device);
      if (opts.segmentLengths) checkSegmentLengths(opts.segmentLengths, opts.segmentIds!);
      let x = this.embed(ids, positionIds); // x: [B, T, hidden]
      let cos: Tensor | undefined;
      let sin: Tensor | undefined;
      if (this.rotary) {
        const maxId = opts.positionIds ? (opts.positionIds.max().item() as number) : total - 1;
        ({ cos, sin } = this.rotary.get(positionIds, maxId, x.dtype, device));
      }
      const layers = this.layerList();
      const useCkpt = this.gradientCheckpointing && isGradEnabled() && !cache;
      for (let i = 0; i < layers.length; i++) {
        const layer = layers[i]!;
        if (useCkpt) {
          // tensors go through checkpoint's inputs (not a closure) so the recomputation sees live handles
          const inputs = [x, ...(cos && sin ? [cos, sin] : []), ...(mask.kind === 'mask' ? [mask.mask] : [])];
          x = checkpoint((...t: Tensor[]) => {
            let j = 1;
            const c = cos ? t[j++] : undefined;
            const s = sin ? t[j++] : undefined;
            const m: AttnMask = mask.kind === 'mask' ? { kind: 'mask', mask: t[j++]! } : mask;
            return layer.forward(t[0]!, { layerIndex: i, mask: m, ...(c && s ? { cos: c, sin: s } : {}) });
          }, inputs)[0]!;
        } else {
          // one scope per layer: the layer's intermediates (q, k, v, scores, the MLP's [tokens, intermediate] tensors)
          // are released when the layer returns instead of when the whole forward does. Without grad that bounds the
          // peak at about one layer's activations (a no-grad [8, 100] forward of the smollm2 shape peaked 1.7 GB above
          // its weights before); with grad, autograd holds what backward needs by its own references.
          const h = x;
          x = scope(() =>
            layer.forward(h, {
              layerIndex: i,
              mask,
              ...(cos && sin ? { cos, sin } : {}),
              ...(cache ? { cache } : {}),
            }),
          );
        }
      }
      if (opts.outputPositions) {
        const pos = onDev(opts.outputPositions)!;
        if (pos.ndim !== 1)
          throw new MedloraError(
            `forward: outputPositions must be [N] flat indices into the ${B}x${T} positions, got [${pos.shape.join(', ')}]`,
          );
        x = x.reshape([B * T, x.size(-1)]).indexSelect(0, pos); // x: [N, hidden], the scored positions only
      }
      return this.head(x); // logits: [B, T, vocab] (or [N, vocab] with outputPositions)
    });
    cache?.advance(T);
    return out;
  }

  override dispose(): void {
    this.rotary?.dispose();
    super.dispose();
  }
}

/**
 * segmentLengths must be the run lengths of segmentIds ([1, T]): attention follows the lengths, so lengths that
 * disagree with the ids would silently attend across the wrong boundaries.
 */
function checkSegmentLengths(lengths: readonly number[], segmentIds: Tensor): void {
  const ids = segmentIds.toNumbers();
  const runs: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i > 0 && ids[i] === ids[i - 1]) runs[runs.length - 1]!++;
    else runs.push(1);
  }
  if (runs.length !== lengths.length || runs.some((r, j) => r !== lengths[j]))
    throw new MedloraError(
      `forward: segmentLengths [${lengths.join(', ')}] are not the segments of segmentIds (runs of [${runs.join(', ')}])`,
    );
}

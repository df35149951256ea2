// DoRA (Liu et al. 2024, "Weight-Decomposed Low-Rank Adaptation") as PEFT 0.21 computes it (peft/tuners/lora/dora.py
// DoraLinearLayer, variants.py DoraLinearVariant): a LoRA wrapper plus a per-output-row magnitude m [out] (saved as
// `<module>.lora_magnitude_vector`), W' = m * (W + s B A) / ||W + s B A||_row, with the row norm detached (paper §4.3).
import { linear, noGrad, scope, type Tensor } from '../tensor/index.js';
import type { LinearLike } from '../model/module.js';
import { MedloraError } from '../util/errors.js';
import { LoraLinear, moduleDevice, type LoraLinearOptions } from './lora.js';

/** What a 4-bit base exposes (Nf4Linear): its weight dequantized as [out, in]. */
interface Dequantizable {
  dequantize(dtype?: Tensor['dtype']): Tensor;
}

/**
 * The base layer's weight as an F32 [out, in] tensor (PEFT's dequantize_module_weight + transpose(fan_in_fan_out)):
 * Linear as stored, GPT-2 Conv1D transposed, an NF4 base dequantized.
 */
export function baseWeightOutIn(base: LinearLike, label: string): Tensor {
  const dq = (base as Partial<Dequantizable>).dequantize;
  if (typeof dq === 'function') return scope(() => dq.call(base, 'f32'));
  const w = (base as unknown as { weight?: Tensor }).weight;
  if (!w || w.ndim !== 2) throw new MedloraError(`${label}: the base layer has no 2-D weight (DoRA needs it)`);
  return scope(() => (base.fanInFanOut ? w.transpose(0, 1) : w).to('f32'));
}

/** The base layer's bias, or undefined (Linear without bias). */
function baseBias(base: LinearLike): Tensor | undefined {
  return (base as unknown as { bias?: Tensor }).bias ?? undefined;
}

/** ||W + s B A|| per output row: [out] F32 (PEFT get_weight_norm: torch.linalg.norm(weight, dim=1)). */
export function doraRowNorm(W: Tensor, deltaOutIn: Tensor): Tensor {
  return scope(() => W.add(deltaOutIn).norm(2, 1));
}

export class DoraLinear extends LoraLinear {
  declare readonly lora_magnitude_vector: Tensor;

  constructor(base: LinearLike, o: LoraLinearOptions) {
    super(base, o);
    // PEFT DoraLinearLayer.update_layer: m = ||W + s B A||_row at creation (B = 0 for a fresh adapter: the row norms of W)
    const m = noGrad(() =>
      scope(() =>
        doraRowNorm(baseWeightOutIn(base, 'DoRA'), this.lora_B.weight.matmul(this.lora_A.weight).mul(this.scaling)),
      ),
    );
    this.param('lora_magnitude_vector', m.requiresGrad_(true));
  }

  /** Replace m (loaded from an adapter file): shape [out], stored as an F32 leaf on the base's device. */
  setMagnitude(m: Tensor, label = 'DoRA'): void {
    if (m.ndim !== 1 || m.shape[0] !== this.outFeatures) {
      throw new MedloraError(
        `${label}: lora_magnitude_vector has shape [${m.shape.join(', ')}]; expected [${this.outFeatures}] (out_features)`,
      );
    }
    const dev = moduleDevice(this.base_layer);
    this.setParam(
      'lora_magnitude_vector',
      noGrad(() => m.detach().to({ dtype: 'f32', device: dev }).clone()).requiresGrad_(true),
    );
  }

  /** m / ||W + s B A||_row, detached norm: [out] F32. */
  private magNormScale(): Tensor {
    return scope(() => {
      // PEFT: lora_weight = lora_B(lora_A(eye)).T, i.e. B A, detached for the norm
      const norm = noGrad(() =>
        doraRowNorm(
          baseWeightOutIn(this.base_layer, 'DoRA'),
          this.lora_B.weight.matmul(this.lora_A.weight).mul(this.scaling),
        ),
      );
      return this.lora_magnitude_vector.div(norm.detach());
    });
  }

  /** The merged weight m / ||W + s B A|| * (W + s B A) as F32 [out, in] (PEFT DoraLinearVariant.merge_unsafe). */
  mergedWeightOutIn(): Tensor {
    return noGrad(() =>
      scope(() => {
        const W = baseWeightOutIn(this.base_layer, 'DoRA merge');
        const V = W.add(this.deltaWeight());
        const norm = V.norm(2, 1);
        return V.mul(this.lora_magnitude_vector.div(norm).view([-1, 1]));
      }),
    );
  }

  override forward(x: Tensor): Tensor {
    return scope(() => {
      // x: [B, T, in]; y: [B, T, out] in the base's dtype (bias included)
      const y = this.base_layer.forward(x);
      let h = x.dtype === 'f32' ? x : x.to('f32'); // h: [B, T, in] f32
      const s = this.magNormScale(); // [out]
      let baseResult: Tensor;
      if (this.training && this.dropoutP > 0) {
        // PEFT: with active dropout the DoRA term uses F.linear(dropout(x), W) (no bias) instead of the base output
        h = h.dropout(this.dropoutP, true);
        baseResult = linear(h, baseWeightOutIn(this.base_layer, 'DoRA')); // [B, T, out]
      } else {
        const b = baseBias(this.base_layer);
        baseResult = b ? y.sub(b) : y; // [B, T, out], the base output without its bias
      }
      const lora = linear(linear(h, this.lora_A.weight), this.lora_B.weight); // [B, T, r] -> [B, T, out] F32
      // result_dora = (m/n - 1) * base_result + m/n * lora_result * scaling, added to y in the promoted dtype
      const d = s.sub(1).mul(baseResult).add(s.mul(lora).mul(this.scaling)); // [out] broadcast over [B, T, out]
      return y.dtype === d.dtype ? y.add(d) : y.add(d).to(y.dtype);
    });
  }
}

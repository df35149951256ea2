// Rotary-embedding inverse frequencies as pure functions: the default 1/theta^(2i/d), linear scaling, and Llama-3's
// frequency-dependent scaling, following transformers' modeling_rope_utils.py (_compute_default_rope_parameters,
// _compute_linear_scaling_rope_parameters, _compute_llama3_parameters).
import type { RopeScaling } from './config.js';

/** inv_freq[i] = 1 / theta^(2i / dim) for i < dim/2 (computed in float64; HF uses float32, differing by ~1e-7 relative). */
export function defaultInvFreq(dim: number, theta: number): Float64Array {
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0)
    throw new Error(`rope: rotary dim must be a positive even integer, got ${dim}`);
  const out = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) out[i] = 1 / theta ** ((2 * i) / dim);
  return out;
}

/**
 * Llama-3 scaling (transformers _compute_llama3_parameters): wavelengths longer than
 * original_max_position_embeddings / low_freq_factor are divided by `factor`, shorter than .../high_freq_factor kept,
 * and the band between is interpolated smoothly.
 */
export function llama3InvFreq(
  base: Float64Array,
  p: { factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number },
): Float64Array {
  const { factor, low_freq_factor: lo, high_freq_factor: hi, original_max_position_embeddings: old } = p;
  const lowFreqWavelen = old / lo;
  const highFreqWavelen = old / hi;
  const out = new Float64Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const inv = base[i]!;
    const wavelen = (2 * Math.PI) / inv;
    if (wavelen < highFreqWavelen)
      out[i] = inv; // high frequency: unchanged
    else if (wavelen > lowFreqWavelen)
      out[i] = inv / factor; // low frequency: scaled down
    else {
      const smooth = (old / wavelen - lo) / (hi - lo);
      out[i] = (1 - smooth) * (inv / factor) + smooth * inv;
    }
  }
  return out;
}

/** inv_freq for a rotary dimension (head_dim * partial_rotary_factor), theta and normalised rope_scaling. */
export function ropeInvFreq(dim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  const base = defaultInvFreq(dim, theta);
  if (scaling === null) return base;
  switch (scaling.rope_type) {
    case 'linear':
      return base.map((v) => v / scaling.factor);
    case 'llama3':
      return llama3InvFreq(base, scaling);
  }
}

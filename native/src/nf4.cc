// NF4 dequantization in one pass (issue 19): packed 4-bit codes (two per byte, element 2i in the high nibble) times
// their block's F32 absmax, written straight into the output dtype. Bit-equal to the ATen chain of src/adapt/nf4.ts
// (dequantizeNf4Reference: indexSelect into the F32 levels, F32 mul by the scale, one rounding by .to(dtype)), without
// its ~17 bytes per weight of temporaries (the i64 index, the F32 values). CPU only; the TS side keeps the chain for
// other devices. The 16 levels are bitsandbytes' NF4 code table (functional.py create_normal_map / dDequantizeNF4),
// the same values as NF4_LEVELS in src/adapt/nf4.ts (the tests compare the two paths bit for bit).
#include "common.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <string>

namespace medlora {

namespace {

using V = Napi::Value;

// bitsandbytes' NF4 levels, ascending, as F32 (each decimal below is the shortest round-trip form of the float)
constexpr float kNf4Levels[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
    -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
    0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

/** Elements per parallel chunk: a weight smaller than this is dequantized on the calling thread alone. */
constexpr int64_t kGrainElements = 1 << 15;

/**
 * out[i] = (scalar_t)(level[code(i)] * absmax[i / bs]) for i < n, code(i) = the high nibble of byte i/2 for even i,
 * the low nibble for odd i. Per block, the 16 possible outputs are computed once (the same F32 product, rounded once),
 * then each byte writes two table entries.
 */
at::Tensor nf4Dequantize(const at::Tensor& codes, const at::Tensor& absmax, int64_t bs, int64_t n, at::ScalarType dt) {
  if (!codes.device().is_cpu() || !absmax.device().is_cpu())
    throw ArgError("codes and absmax must be CPU tensors (other devices use the ATen path), got " +
                   describeTensor(codes) + " and " + describeTensor(absmax));
  if (codes.scalar_type() != at::kByte) throw ArgError("codes: expected u8, got " + describeTensor(codes));
  if (absmax.scalar_type() != at::kFloat) throw ArgError("absmax: expected f32, got " + describeTensor(absmax));
  if (!codes.is_contiguous()) throw ArgError("codes: expected a contiguous tensor, got " + describeTensor(codes));
  if (!absmax.is_contiguous()) throw ArgError("absmax: expected a contiguous tensor, got " + describeTensor(absmax));
  if (bs <= 0 || bs % 2 != 0) throw ArgError("blockSize must be a positive even integer, got " + std::to_string(bs));
  if (n <= 0) throw ArgError("n (number of elements) must be positive, got " + std::to_string(n));
  if (dt != at::kFloat && dt != at::kBFloat16 && dt != at::kHalf && dt != at::kDouble)
    throw ArgError("dtype: expected f32, bf16, f16 or f64, got " + dtypeName(dt));
  const int64_t nb = (n + bs - 1) / bs;
  if (absmax.numel() != nb)
    throw ArgError("absmax: expected " + std::to_string(nb) + " block scales for " + std::to_string(n) +
                   " elements in blocks of " + std::to_string(bs) + ", got " + describeTensor(absmax));
  if (codes.numel() != nb * (bs / 2))
    throw ArgError("codes: expected " + std::to_string(nb * (bs / 2)) + " bytes (" + std::to_string(nb) +
                   " blocks of " + std::to_string(bs) + " 4-bit codes), got " + describeTensor(codes));

  at::Tensor out = at::empty({n}, at::TensorOptions().dtype(dt).device(at::kCPU));
  const uint8_t* src = codes.data_ptr<uint8_t>();
  const float* scales = absmax.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, kGrainElements / bs);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dt, "medlora_nf4_dequantize", [&] {
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, nb, grain, [&](int64_t b0, int64_t b1) {
      scalar_t table[16];
      for (int64_t blk = b0; blk < b1; blk++) {
        const float s = scales[blk];
        for (int k = 0; k < 16; k++) table[k] = static_cast<scalar_t>(kNf4Levels[k] * s);  // F32 product, one rounding
        const int64_t start = blk * bs;
        const int64_t count = std::min(bs, n - start);  // the last block may be padding past n
        const uint8_t* in = src + start / 2;
        scalar_t* o = dst + start;
        const int64_t pairs = count / 2;
        for (int64_t j = 0; j < pairs; j++) {
          const uint8_t byte = in[j];
          o[2 * j] = table[byte >> 4];
          o[2 * j + 1] = table[byte & 15];
        }
        if (count % 2 != 0) o[count - 1] = table[in[pairs] >> 4];  // odd n: the last element is a high nibble
      }
    });
  });
  return out;
}

}  // namespace

void registerNf4(Napi::Env env, Napi::Object ex) {
  // nf4Dequantize(codes u8 [nb * bs / 2], absmax f32 [nb], blockSize, n, dtype) -> [n] in dtype (nb = ceil(n / bs))
  def(env, ex, "nf4Dequantize", [](Call& c) -> V {
    return c.ret(nf4Dequantize(c.t(0), c.t(1), c.i64(2), c.i64(3), c.dtype(4)));
  });
}

}  // namespace medlora

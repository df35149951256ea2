// Dropout for CPU tensors with a counter-based mask (issue 19): each element's keep/drop bit is a hash of (seed,
// index), the seed drawn once per call from the default CPU generator. ATen's CPU dropout fills a float noise tensor
// with a serial (single-thread) mt19937 Bernoulli, divides it by 1-p and saves it for backward; this one runs in
// parallel, writes no noise tensor, and its backward regenerates the same mask from the seed (nothing saved but the
// seed). Same distribution: drop iff u32 < round(p * 2^32) (p exact to 2^-33), kept values scaled by 1/(1-p) as ATen.
// The random stream differs from ATen's (a different generator), so masks are not torch's; tests: gradcheck-style
// consistency of forward/backward, keep rate, determinism under manualSeed and under checkpoint recompute.
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdint>
#include <mutex>

namespace medlora {

namespace {

using V = Napi::Value;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/** splitmix64's finaliser (Steele, Lea, Flood 2014): a bijective mix of 64 bits. */
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/** out[i] = x[i] * (kept(i) ? scale : 0) over a contiguous tensor; kept(i) from (seed, i): two elements per hash. */
at::Tensor applyMask(const at::Tensor& xIn, uint64_t seed, uint32_t threshold, double scale) {
  at::Tensor x = xIn.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "medlora_dropout", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* src = x.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const acc_t s = static_cast<acc_t>(scale);
    // grain: even, so a pair never straddles two threads' ranges
    at::parallel_for(0, (n + 1) / 2, 8192, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; j++) {
        const uint64_t h = mix64(seed + static_cast<uint64_t>(j) * 0x9E3779B97F4A7C15ULL);
        const int64_t i = 2 * j;
        const uint32_t lo = static_cast<uint32_t>(h), hi = static_cast<uint32_t>(h >> 32);
        dst[i] = lo >= threshold ? static_cast<scalar_t>(static_cast<acc_t>(src[i]) * s) : scalar_t(0);
        if (i + 1 < n) dst[i + 1] = hi >= threshold ? static_cast<scalar_t>(static_cast<acc_t>(src[i + 1]) * s) : scalar_t(0);
      }
    });
  });
  return out;
}

struct DropoutFn : public torch::autograd::Function<DropoutFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t seed, int64_t threshold, double scale) {
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["threshold"] = threshold;
    ctx->saved_data["scale"] = scale;
    return applyMask(x, static_cast<uint64_t>(seed), static_cast<uint32_t>(threshold), scale);
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    // the mask is linear: dL/dx = dL/dy * mask * scale, the same mask regenerated from the seed
    at::Tensor gx = applyMask(g[0], static_cast<uint64_t>(ctx->saved_data["seed"].toInt()),
                              static_cast<uint32_t>(ctx->saved_data["threshold"].toInt()), ctx->saved_data["scale"].toDouble());
    return {gx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor fastDropout(const at::Tensor& x, double p, bool train) {
  if (!train || p == 0 || x.numel() == 0) return x;
  // other devices and p = 1 keep ATen's own dropout (the GPU kernel is fused already)
  if (!x.device().is_cpu() || p >= 1 || !at::isFloatingType(x.scalar_type())) return at::dropout(x, p, train);
  uint64_t seed;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = gen.get<at::CPUGeneratorImpl>()->random64();
  }
  const double t = std::round(p * 4294967296.0);
  const int64_t threshold = static_cast<int64_t>(t > 4294967295.0 ? 4294967295.0 : t);
  const double scale = 1.0 / (1.0 - p);
  if (!(x.requires_grad() && at::GradMode::is_enabled())) return applyMask(x, seed, static_cast<uint32_t>(threshold), scale);
  return DropoutFn::apply(x, static_cast<int64_t>(seed), threshold, scale);
}

}  // namespace

void registerDropout(Napi::Env env, Napi::Object ex) {
  def(env, ex, "dropout", [](Call& c) -> V {
    double p = c.num(1);
    if (p < 0 || p > 1) throw ArgError("dropout probability must be in [0, 1], got " + std::to_string(p));
    bool train = c.has(2) ? c.b(2) : true;
    return c.ret(fastDropout(c.t(0), p, train));
  });
  // ATen's own dropout (serial Bernoulli noise), kept for comparison benchmarks (bench/shapes.ts)
  def(env, ex, "atenDropout", [](Call& c) -> V {
    double p = c.num(1);
    if (p < 0 || p > 1) throw ArgError("dropout probability must be in [0, 1], got " + std::to_string(p));
    return c.ret(at::dropout(c.t(0), p, c.has(2) ? c.b(2) : true));
  });
}

}  // namespace medlora

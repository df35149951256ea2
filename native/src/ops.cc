// Tensor operations exported to JS: elementwise math, comparisons, bitwise ops, shape and indexing ops, reductions,
// and the neural-network pieces the supported architectures need. Thin wrappers over ATen: autograd records them.
#include "common.h"

#include <ATen/ScalarOps.h>

#include <cmath>
#include <limits>

namespace medlora {

namespace {

using V = Napi::Value;

/** Argument i as a tensor; a JS number becomes a 0-d "wrapped number" so type promotion follows torch's scalars. */
at::Tensor tensorOrScalar(const Call& c, size_t i) {
  if (c.isTensor(i)) return c.t(i);
  at::Tensor s = at::scalar_to_tensor(c.scalar(i));
  s.unsafeGetTensorImpl()->set_wrapped_number(true);
  return s;
}

c10::optional<std::vector<int64_t>> optDims(const Call& c, size_t i) {
  if (!c.has(i)) return c10::nullopt;
  if (c.isNumber(i)) return std::vector<int64_t>{c.i64(i)};
  return c.ints(i);
}

bool optBool(const Call& c, size_t i, bool dflt) { return c.has(i) ? c.b(i) : dflt; }

void requireFloat(const at::Tensor& t, const char* what) {
  if (!at::isFloatingType(t.scalar_type())) {
    throw ArgError(std::string(what) + " must be a floating-point tensor, got " + describeTensor(t));
  }
}

void requireIndex(const at::Tensor& t, const char* what) {
  if (t.scalar_type() != at::kLong && t.scalar_type() != at::kInt) {
    throw ArgError(std::string(what) + " must be an integer (i64 or i32) tensor, got " + describeTensor(t));
  }
}

at::Reduction::Reduction parseReduction(const std::string& r) {
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw ArgError("reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

/** Attention by hand (libtorch 1.13 has no scaled_dot_product_attention): softmax(q k^T * scale + mask) v. */
at::Tensor manualAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const c10::optional<at::Tensor>& mask,
                           double dropoutP, bool causal, c10::optional<double> scale) {
  double s = scale.has_value() ? *scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * s;
  int64_t L = q.size(-2), S = k.size(-2);
  if (causal) {
    at::Tensor keep = at::ones({L, S}, q.options().dtype(at::kBool)).tril();
    scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  }
  if (mask.has_value()) {
    if (mask->scalar_type() == at::kBool) {
      scores = scores.masked_fill(mask->logical_not(), -std::numeric_limits<double>::infinity());
    } else {
      scores = scores + *mask;
    }
  }
  at::Tensor p = at::softmax(scores, -1);
  if (dropoutP > 0) p = at::dropout(p, dropoutP, true);
  return at::matmul(p, v);
}

#define UNARY(name, expr) \
  def(env, ex, name, [](Call& c) -> V { const at::Tensor& x = c.t(0); return c.ret(expr); })
#define BINARY(name, expr)                                                              \
  def(env, ex, name, [](Call& c) -> V {                                                \
    at::Tensor a = tensorOrScalar(c, 0), b = tensorOrScalar(c, 1);                     \
    return c.ret(expr);                                                                \
  })

void registerElementwise(Napi::Env env, Napi::Object ex) {
  UNARY("neg", at::neg(x));
  UNARY("sqrt", at::sqrt(x));
  UNARY("rsqrt", at::rsqrt(x));
  UNARY("exp", at::exp(x));
  UNARY("log", at::log(x));
  UNARY("abs", at::abs(x));
  UNARY("sin", at::sin(x));
  UNARY("cos", at::cos(x));
  UNARY("tanh", at::tanh(x));
  UNARY("sigmoid", at::sigmoid(x));
  UNARY("relu", at::relu(x));
  UNARY("silu", at::silu(x));
  UNARY("square", at::square(x));
  UNARY("reciprocal", at::reciprocal(x));
  UNARY("floor", at::floor(x));
  UNARY("round", at::round(x));
  UNARY("sign", at::sign(x));
  UNARY("isfinite", at::isfinite(x));
  UNARY("logicalNot", at::logical_not(x));
  UNARY("bitwiseNot", at::bitwise_not(x));
  def(env, ex, "gelu", [](Call& c) -> V {
    std::string approx = c.has(1) ? c.str(1) : "none";
    if (approx != "none" && approx != "tanh") throw ArgError("approximate must be 'none' or 'tanh', got '" + approx + "'");
    return c.ret(at::gelu(c.t(0), approx));
  });

  def(env, ex, "add", [](Call& c) -> V {
    at::Tensor a = tensorOrScalar(c, 0), b = tensorOrScalar(c, 1);
    return c.ret(c.has(2) ? at::add(a, b, c.scalar(2)) : at::add(a, b));
  });
  def(env, ex, "sub", [](Call& c) -> V {
    at::Tensor a = tensorOrScalar(c, 0), b = tensorOrScalar(c, 1);
    return c.ret(c.has(2) ? at::sub(a, b, c.scalar(2)) : at::sub(a, b));
  });
  BINARY("mul", at::mul(a, b));
  BINARY("div", at::div(a, b));
  BINARY("pow", at::pow(a, b));
  BINARY("maximum", at::maximum(a, b));
  BINARY("minimum", at::minimum(a, b));
  BINARY("remainder", at::remainder(a, b));
  BINARY("floorDivide", at::div(a, b, "floor"));
  BINARY("eq", at::eq(a, b));
  BINARY("ne", at::ne(a, b));
  BINARY("lt", at::lt(a, b));
  BINARY("le", at::le(a, b));
  BINARY("gt", at::gt(a, b));
  BINARY("ge", at::ge(a, b));
  BINARY("logicalAnd", at::logical_and(a, b));
  BINARY("logicalOr", at::logical_or(a, b));
  BINARY("bitwiseAnd", at::bitwise_and(a, b));
  BINARY("bitwiseOr", at::bitwise_or(a, b));
  BINARY("bitwiseXor", at::bitwise_xor(a, b));
  BINARY("bitwiseLeftShift", at::bitwise_left_shift(a, b));
  BINARY("bitwiseRightShift", at::bitwise_right_shift(a, b));

  def(env, ex, "where", [](Call& c) -> V {
    const at::Tensor& cond = c.t(0);
    if (cond.scalar_type() != at::kBool) throw ArgError("condition must be a bool tensor, got " + describeTensor(cond));
    return c.ret(at::where(cond, tensorOrScalar(c, 1), tensorOrScalar(c, 2)));
  });
  def(env, ex, "maskedFill", [](Call& c) -> V {
    const at::Tensor& mask = c.t(1);
    if (mask.scalar_type() != at::kBool) throw ArgError("mask must be a bool tensor, got " + describeTensor(mask));
    if (c.isTensor(2)) return c.ret(at::masked_fill(c.t(0), mask, c.t(2)));
    return c.ret(at::masked_fill(c.t(0), mask, c.scalar(2)));
  });
  def(env, ex, "clamp", [](Call& c) -> V {
    c10::optional<at::Scalar> lo, hi;
    if (c.has(1)) lo = c.scalar(1);
    if (c.has(2)) hi = c.scalar(2);
    if (!lo && !hi) throw ArgError("clamp needs a min or a max");
    return c.ret(at::clamp(c.t(0), lo, hi));
  });
}

void registerShape(Napi::Env env, Napi::Object ex) {
  def(env, ex, "reshape", [](Call& c) -> V { return c.ret(at::reshape(c.t(0), c.ints(1))); });
  def(env, ex, "view", [](Call& c) -> V { return c.ret(c.t(0).view(c.ints(1))); });
  def(env, ex, "transpose", [](Call& c) -> V { return c.ret(at::transpose(c.t(0), c.i64(1), c.i64(2))); });
  def(env, ex, "permute", [](Call& c) -> V { return c.ret(c.t(0).permute(c.ints(1))); });
  def(env, ex, "contiguous", [](Call& c) -> V { return c.ret(c.t(0).contiguous()); });
  def(env, ex, "flatten", [](Call& c) -> V {
    return c.ret(at::flatten(c.t(0), c.has(1) ? c.i64(1) : 0, c.has(2) ? c.i64(2) : -1));
  });
  def(env, ex, "squeeze", [](Call& c) -> V { return c.ret(c.has(1) ? at::squeeze(c.t(0), c.i64(1)) : at::squeeze(c.t(0))); });
  def(env, ex, "unsqueeze", [](Call& c) -> V { return c.ret(at::unsqueeze(c.t(0), c.i64(1))); });
  def(env, ex, "expand", [](Call& c) -> V { return c.ret(c.t(0).expand(c.ints(1))); });
  def(env, ex, "repeat", [](Call& c) -> V { return c.ret(c.t(0).repeat(c.ints(1))); });
  def(env, ex, "repeatInterleave", [](Call& c) -> V {
    c10::optional<int64_t> dim;
    if (c.has(2)) dim = c.i64(2);
    if (c.isTensor(1)) return c.ret(at::repeat_interleave(c.t(0), c.t(1), dim));
    return c.ret(at::repeat_interleave(c.t(0), c.i64(1), dim));
  });
  def(env, ex, "narrow", [](Call& c) -> V { return c.ret(at::narrow(c.t(0), c.i64(1), c.i64(2), c.i64(3))); });
  def(env, ex, "slice", [](Call& c) -> V {
    int64_t start = c.has(2) ? c.i64(2) : 0;
    int64_t end = c.has(3) ? c.i64(3) : std::numeric_limits<int64_t>::max();
    int64_t step = c.has(4) ? c.i64(4) : 1;
    if (step < 1) throw ArgError("slice step must be >= 1");
    return c.ret(at::slice(c.t(0), c.i64(1), start, end, step));
  });
  def(env, ex, "select", [](Call& c) -> V { return c.ret(at::select(c.t(0), c.i64(1), c.i64(2))); });
  def(env, ex, "indexSelect", [](Call& c) -> V {
    requireIndex(c.t(2), "index");
    return c.ret(at::index_select(c.t(0), c.i64(1), c.t(2)));
  });
  def(env, ex, "gather", [](Call& c) -> V {
    if (c.t(2).scalar_type() != at::kLong) throw ArgError("index must be an i64 tensor, got " + describeTensor(c.t(2)));
    return c.ret(at::gather(c.t(0), c.i64(1), c.t(2)));
  });
  def(env, ex, "scatter", [](Call& c) -> V {
    if (c.t(2).scalar_type() != at::kLong) throw ArgError("index must be an i64 tensor, got " + describeTensor(c.t(2)));
    if (c.isTensor(3)) return c.ret(at::scatter(c.t(0), c.i64(1), c.t(2), c.t(3)));
    return c.ret(at::scatter(c.t(0), c.i64(1), c.t(2), c.scalar(3)));
  });
  def(env, ex, "scatterAdd", [](Call& c) -> V {
    if (c.t(2).scalar_type() != at::kLong) throw ArgError("index must be an i64 tensor, got " + describeTensor(c.t(2)));
    return c.ret(at::scatter_add(c.t(0), c.i64(1), c.t(2), c.t(3)));
  });
  def(env, ex, "cat", [](Call& c) -> V {
    auto ts = c.tensors(0);
    if (ts.empty()) throw ArgError("cat needs at least one tensor");
    return c.ret(at::cat(ts, c.has(1) ? c.i64(1) : 0));
  });
  def(env, ex, "stack", [](Call& c) -> V {
    auto ts = c.tensors(0);
    if (ts.empty()) throw ArgError("stack needs at least one tensor");
    return c.ret(at::stack(ts, c.has(1) ? c.i64(1) : 0));
  });
  def(env, ex, "split", [](Call& c) -> V {
    int64_t dim = c.has(2) ? c.i64(2) : 0;
    if (c.isNumber(1)) {
      int64_t size = c.i64(1);
      if (size < 1) throw ArgError("split size must be >= 1");
      return c.retList(at::split(c.t(0), size, dim));
    }
    return c.retList(at::split_with_sizes(c.t(0), c.ints(1), dim));
  });
  def(env, ex, "chunk", [](Call& c) -> V {
    int64_t n = c.i64(1);
    if (n < 1) throw ArgError("chunk count must be >= 1");
    return c.retList(at::chunk(c.t(0), n, c.has(2) ? c.i64(2) : 0));
  });
  def(env, ex, "triu", [](Call& c) -> V { return c.ret(at::triu(c.t(0), c.has(1) ? c.i64(1) : 0)); });
  def(env, ex, "tril", [](Call& c) -> V { return c.ret(at::tril(c.t(0), c.has(1) ? c.i64(1) : 0)); });
  def(env, ex, "flip", [](Call& c) -> V { return c.ret(at::flip(c.t(0), c.ints(1))); });
  def(env, ex, "nonzero", [](Call& c) -> V { return c.ret(at::nonzero(c.t(0))); });
}

void registerReductions(Napi::Env env, Napi::Object ex) {
  // sum(x, dims?, keepdim?, dtype?)
  def(env, ex, "sum", [](Call& c) -> V {
    c10::optional<at::ScalarType> dt;
    if (c.has(3)) dt = c.dtype(3);
    auto dims = optDims(c, 1);
    if (!dims) return c.ret(at::sum(c.t(0), dt));
    return c.ret(at::sum(c.t(0), *dims, optBool(c, 2, false), dt));
  });
  def(env, ex, "mean", [](Call& c) -> V {
    auto dims = optDims(c, 1);
    if (!dims) return c.ret(at::mean(c.t(0)));
    return c.ret(at::mean(c.t(0), *dims, optBool(c, 2, false)));
  });
  def(env, ex, "max", [](Call& c) -> V {
    if (!c.has(1)) return c.ret(at::max(c.t(0)));
    return c.ret(std::get<0>(at::max(c.t(0), c.i64(1), optBool(c, 2, false))));
  });
  def(env, ex, "min", [](Call& c) -> V {
    if (!c.has(1)) return c.ret(at::min(c.t(0)));
    return c.ret(std::get<0>(at::min(c.t(0), c.i64(1), optBool(c, 2, false))));
  });
  def(env, ex, "argmax", [](Call& c) -> V {
    c10::optional<int64_t> dim;
    if (c.has(1)) dim = c.i64(1);
    return c.ret(at::argmax(c.t(0), dim, optBool(c, 2, false)));
  });
  def(env, ex, "argmin", [](Call& c) -> V {
    c10::optional<int64_t> dim;
    if (c.has(1)) dim = c.i64(1);
    return c.ret(at::argmin(c.t(0), dim, optBool(c, 2, false)));
  });
  def(env, ex, "any", [](Call& c) -> V { return c.ret(at::any(c.t(0))); });
  def(env, ex, "all", [](Call& c) -> V { return c.ret(at::all(c.t(0))); });
  // topk(x, k, dim, largest, sorted) -> [values, indices]
  def(env, ex, "topk", [](Call& c) -> V {
    auto r = at::topk(c.t(0), c.i64(1), c.has(2) ? c.i64(2) : -1, optBool(c, 3, true), optBool(c, 4, true));
    return c.retList({std::get<0>(r), std::get<1>(r)});
  });
  def(env, ex, "sort", [](Call& c) -> V {
    auto r = at::sort(c.t(0), c.has(1) ? c.i64(1) : -1, optBool(c, 2, false));
    return c.retList({std::get<0>(r), std::get<1>(r)});
  });
  def(env, ex, "cumsum", [](Call& c) -> V { return c.ret(at::cumsum(c.t(0), c.i64(1))); });
  // norm(x, p, dims?, keepdim?)
  def(env, ex, "norm", [](Call& c) -> V {
    at::Scalar p = c.has(1) ? c.scalar(1) : at::Scalar(2.0);
    auto dims = optDims(c, 2);
    if (!dims) return c.ret(at::norm(c.t(0), p));
    return c.ret(at::norm(c.t(0), p, *dims, optBool(c, 3, false)));
  });
  def(env, ex, "multinomial", [](Call& c) -> V { return c.ret(at::multinomial(c.t(0), c.i64(1), optBool(c, 2, false))); });
}

void registerNN(Napi::Env env, Napi::Object ex) {
  def(env, ex, "matmul", [](Call& c) -> V { return c.ret(at::matmul(c.t(0), c.t(1))); });
  // linear(x, w[out,in], b?) = x w^T + b
  def(env, ex, "linear", [](Call& c) -> V {
    const at::Tensor& x = c.t(0);
    const at::Tensor& w = c.t(1);
    if (w.dim() != 2) throw ArgError("weight must be 2-D [out, in], got " + describeTensor(w));
    if (x.dim() < 1 || x.size(-1) != w.size(1)) {
      throw ArgError("input's last dimension must equal weight's in-features " + std::to_string(w.size(1)));
    }
    return c.ret(at::linear(x, w, c.optT(2)));
  });
  def(env, ex, "embedding", [](Call& c) -> V {
    const at::Tensor& w = c.t(0);
    const at::Tensor& ids = c.t(1);
    if (w.dim() != 2) throw ArgError("weight must be 2-D [vocab, dim], got " + describeTensor(w));
    requireIndex(ids, "ids");
    return c.ret(at::embedding(w, ids));
  });
  // layerNorm(x, normalizedShape, w?, b?, eps)
  def(env, ex, "layerNorm", [](Call& c) -> V {
    return c.ret(at::layer_norm(c.t(0), c.ints(1), c.optT(2), c.optT(3), c.has(4) ? c.num(4) : 1e-5));
  });
  // rmsNorm(x, w, eps): Hugging Face semantics (LlamaRMSNorm): normalise in (at least) f32, cast back, then scale
  def(env, ex, "rmsNorm", [](Call& c) -> V {
    const at::Tensor& x = c.t(0);
    const at::Tensor& w = c.t(1);
    requireFloat(x, "input");
    if (w.dim() != 1 || x.dim() < 1 || w.size(0) != x.size(-1)) {
      throw ArgError("weight must be 1-D with the input's last dimension " + std::to_string(x.dim() ? x.size(-1) : 0));
    }
    double eps = c.has(2) ? c.num(2) : 1e-6;
    at::Tensor xf = x.to(at::promote_types(x.scalar_type(), at::kFloat));
    at::Tensor y = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps);
    return c.ret(w * y.to(x.scalar_type()));
  });
  def(env, ex, "softmax", [](Call& c) -> V {
    c10::optional<at::ScalarType> dt;
    if (c.has(2)) dt = c.dtype(2);
    return c.ret(at::softmax(c.t(0), c.i64(1), dt));
  });
  def(env, ex, "logSoftmax", [](Call& c) -> V {
    c10::optional<at::ScalarType> dt;
    if (c.has(2)) dt = c.dtype(2);
    return c.ret(at::log_softmax(c.t(0), c.i64(1), dt));
  });
  // scaledDotProductAttention(q, k, v, mask?, isCausal, scale?, dropoutP); mask: bool (true = attend) or additive float
  def(env, ex, "scaledDotProductAttention", [](Call& c) -> V {
    const at::Tensor& q = c.t(0);
    const at::Tensor& k = c.t(1);
    const at::Tensor& v = c.t(2);
    if (q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim()) throw ArgError("q, k, v must have the same rank >= 2");
    if (q.size(-1) != k.size(-1)) throw ArgError("q and k must have the same head dimension");
    auto mask = c.optT(3);
    bool causal = optBool(c, 4, false);
    c10::optional<double> scale;
    if (c.has(5)) scale = c.num(5);
    double dropoutP = c.has(6) ? c.num(6) : 0.0;
    if (dropoutP < 0 || dropoutP >= 1) throw ArgError("dropoutP must be in [0, 1)");
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
    if (!(mask.has_value() && causal)) return c.ret(at::scaled_dot_product_attention(q, k, v, mask, dropoutP, causal, scale));
#endif
    return c.ret(manualAttention(q, k, v, mask, dropoutP, causal, scale));
  });
  // crossEntropy(logits[N,C], targets[N] i64, ignoreIndex, reduction)
  def(env, ex, "crossEntropy", [](Call& c) -> V {
    const at::Tensor& logits = c.t(0);
    const at::Tensor& targets = c.t(1);
    requireFloat(logits, "logits");
    if (logits.dim() != 2) throw ArgError("logits must be 2-D [N, classes], got " + describeTensor(logits));
    if (targets.scalar_type() != at::kLong || targets.dim() != 1 || targets.size(0) != logits.size(0)) {
      throw ArgError("targets must be a 1-D i64 tensor of length " + std::to_string(logits.size(0)) + ", got " + describeTensor(targets));
    }
    int64_t ignore = c.has(2) ? c.i64(2) : -100;
    auto red = parseReduction(c.has(3) ? c.str(3) : "mean");
    return c.ret(at::cross_entropy_loss(logits, targets, {}, red, ignore, 0.0));
  });
}

void registerCasts(Napi::Env env, Napi::Object ex) {
  // to(x, dtype?, device?): returns x itself (a new handle to the same tensor) when nothing changes
  def(env, ex, "to", [](Call& c) -> V {
    const at::Tensor& x = c.t(0);
    at::ScalarType dt = c.has(1) ? c.dtype(1) : x.scalar_type();
    at::Device dev = c.has(2) ? c.device(2) : x.device();
    return c.ret(x.to(dev, dt));
  });
  def(env, ex, "detach", [](Call& c) -> V { return c.ret(c.t(0).detach()); });
  def(env, ex, "clone", [](Call& c) -> V { return c.ret(c.t(0).clone()); });
  def(env, ex, "copy_", [](Call& c) -> V {
    c.t(0).copy_(c.t(1));
    return c.info[0];
  });
  def(env, ex, "zero_", [](Call& c) -> V {
    c.t(0).zero_();
    return c.info[0];
  });
  def(env, ex, "fill_", [](Call& c) -> V {
    c.t(0).fill_(c.scalar(1));
    return c.info[0];
  });
  def(env, ex, "mul_", [](Call& c) -> V {
    c.t(0).mul_(tensorOrScalar(c, 1));
    return c.info[0];
  });
  def(env, ex, "add_", [](Call& c) -> V {
    if (c.has(2)) c.t(0).add_(tensorOrScalar(c, 1), c.scalar(2));
    else c.t(0).add_(tensorOrScalar(c, 1));
    return c.info[0];
  });
}

}  // namespace

void registerOps(Napi::Env env, Napi::Object exports) {
  registerElementwise(env, exports);
  registerShape(env, exports);
  registerReductions(env, exports);
  registerNN(env, exports);
  registerCasts(env, exports);
}

}  // namespace medlora

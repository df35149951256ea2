// Optimizer pieces in native code: AdamW with torch.optim.AdamW semantics (single-tensor path, decoupled weight decay,
// bias correction, eps added outside sqrt(v_hat)), its state for checkpoints, and clip_grad_norm_.
#include "common.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

namespace medlora {

namespace {

using V = Napi::Value;

struct AdamWBox {
  uint32_t magic = kOptimMagic;
  std::vector<at::Tensor> params, expAvg, expAvgSq;
  std::vector<int64_t> steps;  // per parameter, as torch keeps state['step'] per parameter
  int64_t calls = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01;
};

AdamWBox* optOf(const Call& c, size_t i) {
  if (i < c.size() && c.info[i].IsExternal()) {
    auto* b = c.info[i].As<Napi::External<AdamWBox>>().Data();
    if (b && b->magic == kOptimMagic) return b;
  }
  throw ArgError("argument " + std::to_string(i) + ": expected an AdamW handle");
}

/** One AdamW update of one parameter; mirrors torch/optim/adamw.py _single_tensor_adamw (torch 2.x). */
void adamwUpdate(AdamWBox& o, size_t i, double lr) {
  at::Tensor& p = o.params[i];
  const at::Tensor& g = p.grad();
  int64_t step = ++o.steps[i];
  p.mul_(1.0 - lr * o.weightDecay);
  o.expAvg[i].lerp_(g, 1.0 - o.beta1);
  o.expAvgSq[i].mul_(o.beta2).addcmul_(g, g, 1.0 - o.beta2);
  double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step));
  double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step));
  at::Tensor denom = (o.expAvgSq[i].sqrt() / std::sqrt(bc2)).add_(o.eps);
  p.addcdiv_(o.expAvg[i], denom, -(lr / bc1));
}

void registerAll(Napi::Env env, Napi::Object ex) {
  // adamwNew(params[], beta1, beta2, eps, weightDecay)
  def(env, ex, "adamwNew", [](Call& c) -> V {
    auto params = c.tensors(0);
    auto* o = new AdamWBox();
    try {
      o->beta1 = c.num(1);
      o->beta2 = c.num(2);
      o->eps = c.num(3);
      o->weightDecay = c.num(4);
      if (!(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1)) throw ArgError("betas must be in [0, 1)");
      if (!(o->eps >= 0) || !(o->weightDecay >= 0)) throw ArgError("eps and weightDecay must be >= 0");
      for (size_t i = 0; i < params.size(); i++) {
        const at::Tensor& p = params[i];
        if (!p.is_leaf() || !p.requires_grad()) throw ArgError("parameter " + std::to_string(i) + " (" + describeTensor(p) + ") must be a leaf tensor that requires grad");
        at::NoGradGuard ng;
        o->params.push_back(p);
        o->expAvg.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
        o->expAvgSq.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
        o->steps.push_back(0);
      }
    } catch (...) {
      delete o;
      throw;
    }
    return Napi::External<AdamWBox>::New(c.env, o, [](Napi::BasicEnv, AdamWBox* b) { delete b; });
  });
  // adamwStep(opt, lr): parameters without a gradient are skipped (their step count does not advance), as in torch
  def(env, ex, "adamwStep", [](Call& c) -> V {
    AdamWBox& o = *optOf(c, 0);
    double lr = c.num(1);
    if (!(lr >= 0) || !std::isfinite(lr)) throw ArgError("learning rate must be a finite number >= 0");
    at::NoGradGuard ng;
    o.calls++;
    for (size_t i = 0; i < o.params.size(); i++) {
      if (o.params[i].grad().defined()) adamwUpdate(o, i, lr);
    }
    return c.env.Undefined();
  });
  def(env, ex, "adamwZeroGrad", [](Call& c) -> V {
    for (auto& p : optOf(c, 0)->params) p.mutable_grad().reset();
    return c.env.Undefined();
  });
  // adamwState(opt) -> {step, paramSteps[], expAvg[], expAvgSq[]} (tensors are the live state, not copies)
  def(env, ex, "adamwState", [](Call& c) -> V {
    AdamWBox& o = *optOf(c, 0);
    auto r = Napi::Object::New(c.env);
    r.Set("step", Napi::Number::New(c.env, static_cast<double>(o.calls)));
    auto steps = Napi::Array::New(c.env, o.steps.size());
    for (size_t i = 0; i < o.steps.size(); i++) steps.Set(static_cast<uint32_t>(i), Napi::Number::New(c.env, static_cast<double>(o.steps[i])));
    r.Set("paramSteps", steps);
    r.Set("expAvg", c.retList(o.expAvg));
    r.Set("expAvgSq", c.retList(o.expAvgSq));
    return r;
  });
  // adamwLoadState(opt, step, paramSteps[], expAvg[], expAvgSq[]): copies into the existing state tensors
  def(env, ex, "adamwLoadState", [](Call& c) -> V {
    AdamWBox& o = *optOf(c, 0);
    int64_t calls = c.i64(1);
    auto steps = c.ints(2);
    auto m = c.tensors(3);
    auto v = c.tensors(4);
    size_t n = o.params.size();
    if (steps.size() != n || m.size() != n || v.size() != n) {
      throw ArgError("state has " + std::to_string(m.size()) + " entries but the optimizer has " + std::to_string(n) + " parameters");
    }
    for (size_t i = 0; i < n; i++) {
      if (!m[i].sizes().equals(o.params[i].sizes()) || !v[i].sizes().equals(o.params[i].sizes())) {
        throw ArgError("state entry " + std::to_string(i) + " has shape " + describeTensor(m[i]) + " but parameter " +
                       std::to_string(i) + " is " + describeTensor(o.params[i]));
      }
    }
    at::NoGradGuard ng;
    for (size_t i = 0; i < n; i++) {
      o.expAvg[i].copy_(m[i]);
      o.expAvgSq[i].copy_(v[i]);
      o.steps[i] = steps[i];
    }
    o.calls = calls;
    return c.env.Undefined();
  });
  // clipGradNorm(params[], maxNorm) -> total L2 norm before clipping (torch.nn.utils.clip_grad_norm_)
  def(env, ex, "clipGradNorm", [](Call& c) -> V {
    auto params = c.tensors(0);
    double maxNorm = c.num(1);
    if (!(maxNorm > 0)) throw ArgError("maxNorm must be > 0");
    at::NoGradGuard ng;
    std::vector<at::Tensor> grads, norms;
    for (auto& p : params) {
      if (p.grad().defined()) {
        grads.push_back(p.grad());
        norms.push_back(at::norm(p.grad(), 2));
      }
    }
    if (grads.empty()) return Napi::Number::New(c.env, 0.0);
    at::Tensor total = at::norm(at::stack(norms), 2);
    at::Tensor coef = at::clamp_max(maxNorm / (total + 1e-6), 1.0);
    for (auto& g : grads) g.mul_(coef.to(g.device()));
    return Napi::Number::New(c.env, total.item<double>());
  });
}

}  // namespace

void registerOptim(Napi::Env env, Napi::Object exports) { registerAll(env, exports); }

}  // namespace medlora

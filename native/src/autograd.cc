// Autograd from JS: requires-grad flags, .grad, backward / grad, grad-mode scopes, and activation checkpointing (a
// custom autograd function that re-runs a JS segment during backward). The JS callback may only run on the JS thread:
// when libtorch's engine calls it from another thread (CUDA device threads, or the worker mode used in tests), the
// request is queued to the JS thread, which waits inside backward() servicing such requests until the engine is done.
#include "common.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace medlora {

namespace {

using V = Napi::Value;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::thread::id gJsThread;

/** A JS exception thrown inside a checkpoint segment, carried through libtorch as a plain C++ exception. */
struct JsCallbackError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- running work on the JS thread while the engine runs elsewhere

struct Request {
  std::function<void()> work;
  bool finished = false;
  std::exception_ptr error;
};

struct Bridge {
  std::mutex m;
  std::condition_variable cv;
  std::deque<Request*> queue;
  bool done = false;
};

Bridge* gBridge = nullptr;  // set while a backward runs in worker mode
enum class EngineMode { Auto, Inline, Worker };
EngineMode gMode = EngineMode::Auto;

void runOnJsThread(const std::function<void()>& work) {
  if (std::this_thread::get_id() == gJsThread) {
    work();
    return;
  }
  Bridge* br = gBridge;
  if (!br) throw std::runtime_error("checkpoint segment must run on the JS thread, but backward was not started from medlora");
  Request req{work};
  std::unique_lock<std::mutex> lk(br->m);
  br->queue.push_back(&req);
  br->cv.notify_all();
  br->cv.wait(lk, [&] { return req.finished; });
  if (req.error) std::rethrow_exception(req.error);
}

/** Run `engineWork` (a backward) either here or on a worker thread while this (JS) thread services JS requests. */
void runEngine(bool worker, const std::function<void()>& engineWork) {
  if (!worker || gBridge) {
    engineWork();
    return;
  }
  Bridge br;
  gBridge = &br;
  std::exception_ptr err;
  std::thread th([&] {
    try {
      engineWork();
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard<std::mutex> lk(br.m);
    br.done = true;
    br.cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lk(br.m);
    for (;;) {
      br.cv.wait(lk, [&] { return br.done || !br.queue.empty(); });
      if (br.queue.empty() && br.done) break;
      Request* r = br.queue.front();
      br.queue.pop_front();
      lk.unlock();
      try {
        r->work();
      } catch (...) {
        r->error = std::current_exception();
      }
      lk.lock();
      r->finished = true;
      br.cv.notify_all();
    }
  }
  th.join();
  gBridge = nullptr;
  if (err) std::rethrow_exception(err);
}

bool useWorker(const std::vector<at::Tensor>& roots) {
  if (gMode == EngineMode::Worker) return true;
  if (gMode == EngineMode::Inline) return false;
  for (const auto& t : roots) if (t.defined() && t.is_cuda()) return true;
  return false;
}

// ---- checkpoint

/** The JS segment function. Its graph node may die inside GC or on a libtorch thread, so the reference is
 *  released later on the JS thread (releaseRefLater). */
struct JsFn : torch::CustomClassHolder {
  Napi::Env env;
  napi_ref ref = nullptr;
  JsFn(Napi::Env env, Napi::Function f) : env(env) {
    if (napi_create_reference(env, f, 1, &ref) != napi_ok) throw std::runtime_error("cannot reference the checkpoint function");
  }
  ~JsFn() override { releaseRefLater(ref); }

  /** Call the segment with fresh handles for `inputs`; collect its output tensors and dispose every handle used. */
  variable_list call(const variable_list& inputs) {
    Napi::HandleScope scope(env);
    auto arr = Napi::Array::New(env, inputs.size());
    for (size_t i = 0; i < inputs.size(); i++) arr.Set(static_cast<uint32_t>(i), wrapTensor(env, inputs[i]));
    Napi::Value out;
    napi_value fv;
    if (napi_get_reference_value(env, ref, &fv) != napi_ok) throw std::runtime_error("checkpoint function was released");
    try {
      out = Napi::Function(env, fv).Call({arr});
    } catch (const Napi::Error& e) {
      throw JsCallbackError("checkpoint segment threw: " + e.Message());
    }
    variable_list result;
    std::vector<TensorBox*> toDispose;
    if (!out.IsArray()) throw std::runtime_error("checkpoint segment must return an array of tensors");
    auto oa = out.As<Napi::Array>();
    for (uint32_t i = 0; i < oa.Length(); i++) {
      TensorBox* b = boxOf(oa.Get(i));
      if (!b || b->disposed) throw std::runtime_error("checkpoint segment output " + std::to_string(i) + " is not a live tensor");
      result.push_back(b->t);
      toDispose.push_back(b);
    }
    for (uint32_t i = 0; i < arr.Length(); i++) toDispose.push_back(boxOf(arr.Get(i)));
    for (TensorBox* b : toDispose) disposeBox(env, b);
    return result;
  }
};

/** Generators a segment may draw from (dropout): the CPU one and, when an input lives on a GPU, that GPU's. */
std::vector<at::Generator> segmentGenerators(at::TensorList inputs) {
  std::vector<at::Generator> gens{at::detail::getDefaultCPUGenerator()};
  for (const auto& t : inputs) {
    if (t.defined() && t.is_cuda()) {
      gens.push_back(at::globalContext().defaultGenerator(t.device()));
      break;
    }
  }
  return gens;
}

std::vector<at::Tensor> rngStates(std::vector<at::Generator> gens) {
  std::vector<at::Tensor> states;
  for (auto& g : gens) {
    std::lock_guard<std::mutex> lock(g.mutex());
    states.push_back(g.get_state());
  }
  return states;
}

void setRngStates(std::vector<at::Generator>& gens, const std::vector<at::Tensor>& states) {
  for (size_t i = 0; i < gens.size() && i < states.size(); i++) {
    std::lock_guard<std::mutex> lock(gens[i].mutex());
    gens[i].set_state(states[i]);
  }
}

struct CheckpointFn : public torch::autograd::Function<CheckpointFn> {
  // `inputs` = the segment's inputs followed by `extra` placeholders that the segment does not see
  static variable_list forward(AutogradContext* ctx, at::TensorList inputs, c10::intrusive_ptr<JsFn> fn, int64_t extra) {
    ctx->saved_data["fn"] = c10::IValue::make_capsule(fn);
    ctx->saved_data["extra"] = extra;
    variable_list real(inputs.begin(), inputs.end() - extra);
    // dropout inside the segment must draw the same masks when recomputed: keep the generators' states
    ctx->saved_data["rng"] = rngStates(segmentGenerators(real));
    ctx->save_for_backward(real);
    variable_list out;
    runOnJsThread([&] { out = fn->call(real); });  // grad mode is off here (Function::apply)
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list gradOutputs) {
    auto fn = c10::static_intrusive_pointer_cast<JsFn>(ctx->saved_data["fn"].toCapsule());
    variable_list saved = ctx->get_saved_variables();
    variable_list detached;
    for (const auto& s : saved) {
      at::Tensor d = s.detach();
      if (s.requires_grad() && at::isFloatingType(s.scalar_type())) d.requires_grad_(true);
      detached.push_back(d);
    }
    variable_list outs;
    auto gens = segmentGenerators(saved);
    std::vector<at::Tensor> current = rngStates(gens);
    setRngStates(gens, ctx->saved_data["rng"].toTensorVector());
    std::exception_ptr err;
    try {
      runOnJsThread([&] {
        at::AutoGradMode enable(true);
        outs = fn->call(detached);
      });
    } catch (...) {
      err = std::current_exception();
    }
    setRngStates(gens, current);
    if (err) std::rethrow_exception(err);
    variable_list roots, grads;
    for (size_t i = 0; i < outs.size() && i < gradOutputs.size(); i++) {
      if (outs[i].requires_grad() && gradOutputs[i].defined()) {
        roots.push_back(outs[i]);
        grads.push_back(gradOutputs[i]);
      }
    }
    // accumulates into the parameters the segment used (reentrant backward, as torch's reentrant checkpoint does)
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    variable_list result;
    for (auto& d : detached) result.push_back(d.requires_grad() ? d.grad() : at::Tensor());
    for (int64_t i = 0; i < ctx->saved_data["extra"].toInt(); i++) result.push_back(at::Tensor());
    result.push_back(at::Tensor());  // for the `fn` argument
    result.push_back(at::Tensor());  // for the `extra` argument
    return result;
  }
};

void registerAll(Napi::Env env, Napi::Object ex) {
  def(env, ex, "requiresGrad_", [](Call& c) -> V {
    at::Tensor& t = c.t(0);
    bool on = c.b(1);
    if (on && !at::isFloatingType(t.scalar_type())) throw ArgError("only floating-point tensors can require gradients, got " + describeTensor(t));
    t.requires_grad_(on);
    return c.info[0];
  });
  def(env, ex, "grad", [](Call& c) -> V { return c.ret(c.t(0).grad()); });
  def(env, ex, "setGrad", [](Call& c) -> V {
    if (c.has(1)) c.t(0).mutable_grad() = c.t(1);
    else c.t(0).mutable_grad().reset();
    return c.env.Undefined();
  });
  def(env, ex, "zeroGrad", [](Call& c) -> V {
    c.t(0).mutable_grad().reset();  // torch's zero_grad(set_to_none=True)
    return c.env.Undefined();
  });
  def(env, ex, "isLeaf", [](Call& c) -> V { return Napi::Boolean::New(c.env, c.t(0).is_leaf()); });
  // backward(t, gradOutput?, retainGraph?)
  def(env, ex, "backward", [](Call& c) -> V {
    at::Tensor t = c.t(0);
    at::Tensor g = c.has(1) ? c.t(1) : at::Tensor();
    bool retain = c.has(2) && c.b(2);
    if (!t.requires_grad()) throw ArgError("tensor does not require grad and has no grad_fn (nothing to differentiate)");
    if (!g.defined() && t.numel() != 1) throw ArgError("backward() without a gradient needs a single-element tensor, got " + describeTensor(t));
    runEngine(useWorker({t}), [&] { t.backward(g, retain, false); });
    return c.env.Undefined();
  });
  // autogradGrad(outputs[], inputs[], gradOutputs[]?, retainGraph?, createGraph?) -> (Tensor|null)[]
  def(env, ex, "autogradGrad", [](Call& c) -> V {
    auto outputs = c.tensors(0);
    auto inputs = c.tensors(1);
    variable_list gradOutputs = c.has(2) ? c.tensors(2) : variable_list{};
    bool create = c.has(4) && c.b(4);
    c10::optional<bool> retain;
    if (c.has(3)) retain = c.b(3);
    for (size_t i = 0; i < inputs.size(); i++) {
      if (!inputs[i].requires_grad()) throw ArgError("input " + std::to_string(i) + " does not require grad");
    }
    variable_list r;
    runEngine(useWorker(outputs), [&] { r = torch::autograd::grad(outputs, inputs, gradOutputs, retain, create, true); });
    return c.retList(r);
  });
  def(env, ex, "setGradEnabled", [](Call& c) -> V {
    bool prev = at::GradMode::is_enabled();
    at::GradMode::set_enabled(c.b(0));
    return Napi::Boolean::New(c.env, prev);
  });
  def(env, ex, "isGradEnabled", [](Call& c) -> V { return Napi::Boolean::New(c.env, at::GradMode::is_enabled()); });
  // setEngineMode('auto' | 'inline' | 'worker'): where backward runs (worker = libtorch on another thread; for tests)
  def(env, ex, "setEngineMode", [](Call& c) -> V {
    std::string m = c.str(0);
    if (m == "auto") gMode = EngineMode::Auto;
    else if (m == "inline") gMode = EngineMode::Inline;
    else if (m == "worker") gMode = EngineMode::Worker;
    else throw ArgError("engine mode must be 'auto', 'inline' or 'worker'");
    return c.env.Undefined();
  });
  // checkpoint(fn, inputs[]) -> outputs[]: fn(handles[]) -> handles[], run without a graph now and again in backward
  def(env, ex, "checkpoint", [](Call& c) -> V {
    if (!c.info[0].IsFunction()) throw ArgError("argument 0: expected a function");
    auto fn = c10::make_intrusive<JsFn>(c.env, c.info[0].As<Napi::Function>());
    variable_list inputs = c.tensors(1);
    if (!at::GradMode::is_enabled()) return c.retList(fn->call(inputs));
    // a grad-requiring placeholder input makes the outputs require grad even when no input does (e.g. the first
    // block after a frozen embedding), so the parameters used inside still get their gradients
    inputs.push_back(at::empty({0}, at::TensorOptions().dtype(at::kFloat)).requires_grad_(true));
    // pass a TensorList: a std::vector argument would not be recognised as tensors by Function::apply
    variable_list out = CheckpointFn::apply(at::TensorList(inputs), fn, static_cast<int64_t>(1));
    return c.retList(out);
  });
}

}  // namespace

void registerAutograd(Napi::Env env, Napi::Object exports) {
  gJsThread = std::this_thread::get_id();
  registerAll(env, exports);
}

}  // namespace medlora

// Shared pieces of the medlora addon: the tensor handle (a JS external around at::Tensor), argument decoding with
// validation, and the wrapper that turns every C++ exception into a JS Error "medlora engine: <op>: ..." (engine: true).
#pragma once

#include <napi.h>
#include <ATen/ATen.h>
#include <torch/version.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace medlora {

// Magic first word of every struct we hand to JS as an external: lets us refuse an external that is not ours.
constexpr uint32_t kTensorMagic = 0x4d4c5431;  // "MLT1"
constexpr uint32_t kOptimMagic = 0x4d4c4f31;   // "MLO1"

/** What a JS tensor handle points at. `t` is reset on dispose(); the box itself is freed by the GC finalizer. */
struct TensorBox {
  uint32_t magic = kTensorMagic;
  at::Tensor t;
  bool disposed = false;
  void* storageKey = nullptr;  // storage counted in external memory (see core.cc)
};

/** A bad argument detected before calling libtorch (message names the argument and what was expected). */
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string dtypeName(at::ScalarType s);
at::ScalarType parseDType(const std::string& s);
std::string describeTensor(const at::Tensor& t);

/** Decoded view of one call's arguments; every accessor validates and throws ArgError naming the argument. */
class Call {
 public:
  explicit Call(const Napi::CallbackInfo& info) : info(info), env(info.Env()) {}
  const Napi::CallbackInfo& info;
  Napi::Env env;

  size_t size() const { return info.Length(); }
  bool has(size_t i) const { return i < info.Length() && !info[i].IsUndefined() && !info[i].IsNull(); }
  bool isTensor(size_t i) const;
  bool isNumber(size_t i) const { return i < info.Length() && info[i].IsNumber(); }
  at::Tensor& t(size_t i) const;
  c10::optional<at::Tensor> optT(size_t i) const;
  double num(size_t i) const;
  int64_t i64(size_t i) const;
  bool b(size_t i) const;
  std::string str(size_t i) const;
  std::vector<int64_t> ints(size_t i) const;
  std::vector<at::Tensor> tensors(size_t i) const;
  at::ScalarType dtype(size_t i) const;
  at::Device device(size_t i) const;
  at::Scalar scalar(size_t i) const;

  Napi::Value ret(at::Tensor t) const;
  Napi::Value retList(const std::vector<at::Tensor>& ts) const;
};

using OpFn = Napi::Value (*)(Call&);

/** Register `fn` as exports[name], wrapped so that no exception crosses into JS untranslated. */
void def(Napi::Env env, Napi::Object exports, const char* name, OpFn fn);

Napi::Value wrapTensor(Napi::Env env, at::Tensor t);
TensorBox* boxOf(const Napi::Value& v);  // nullptr if not a tensor handle
void disposeBox(Napi::BasicEnv env, TensorBox* b);
/** Delete a JS reference later, on the JS thread outside GC (safe to call from finalizers and libtorch threads). */
void releaseRefLater(napi_ref ref);
Napi::Error engineError(Napi::Env env, const std::string& op, const std::string& msg, const Napi::CallbackInfo* info);

// per-file registration (called from the module init in core.cc)
void registerOps(Napi::Env env, Napi::Object exports);
void registerAutograd(Napi::Env env, Napi::Object exports);
void registerOptim(Napi::Env env, Napi::Object exports);
void registerDropout(Napi::Env env, Napi::Object exports);  // dropout.cc: counter-based CPU dropout
void registerDist(Napi::Env env, Napi::Object exports);  // dist.cc: c10d process groups
void registerNf4(Napi::Env env, Napi::Object exports);   // nf4.cc: one-pass NF4 dequantization

}  // namespace medlora

// The addon's core: tensor handles and their memory accounting, argument decoding, error translation, tensor
// creation / conversion / metadata, and global settings (seed, threads, devices, build info). Module init lives here.
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#ifdef MEDLORA_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <unistd.h>

#include <cerrno>
#include <atomic>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

namespace medlora {

// ---------------------------------------------------------------------------------------------------------------
// dtypes

std::string dtypeName(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return "f32";
    case at::kDouble: return "f64";
    case at::kBFloat16: return "bf16";
    case at::kHalf: return "f16";
    case at::kLong: return "i64";
    case at::kInt: return "i32";
    case at::kShort: return "i16";
    case at::kChar: return "i8";
    case at::kByte: return "u8";
    case at::kBool: return "bool";
    default: return c10::toString(s);
  }
}

at::ScalarType parseDType(const std::string& s) {
  if (s == "f32") return at::kFloat;
  if (s == "f64") return at::kDouble;
  if (s == "bf16") return at::kBFloat16;
  if (s == "f16") return at::kHalf;
  if (s == "i64") return at::kLong;
  if (s == "i32") return at::kInt;
  if (s == "i8") return at::kChar;
  if (s == "u8") return at::kByte;
  if (s == "bool") return at::kBool;
  throw ArgError("unknown dtype '" + s + "' (expected f32, f64, bf16, f16, i64, i32, i8, u8 or bool)");
}

std::string describeTensor(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream o;
  o << dtypeName(t.scalar_type()) << "[";
  for (int64_t i = 0; i < t.dim(); i++) o << (i ? "," : "") << t.size(i);
  o << "]";
  if (!t.device().is_cpu()) o << "@" << t.device().str();
  return o.str();
}

// ---------------------------------------------------------------------------------------------------------------
// handles and external-memory accounting. Several handles may share one storage (views): V8 is told about a
// storage's bytes once, when its first handle appears, and untold when its last handle goes. Handles are only
// created and freed on the JS thread, so the map needs no lock.

namespace {
struct StorageCount {
  int64_t handles;
  int64_t bytes;
};
std::unordered_map<void*, StorageCount> gStorages;
int64_t gLiveTensors = 0;
int64_t gReportedBytes = 0;  // bytes we have told V8 about (sum over counted storages)
int64_t gV8External = 0;     // V8's external-memory total after our last adjustment

void accountAdd(Napi::BasicEnv env, TensorBox* b) {
  const at::Tensor& t = b->t;
  if (!t.defined() || !t.has_storage()) return;
  void* key = t.storage().unsafeGetStorageImpl();
  b->storageKey = key;
  auto it = gStorages.find(key);
  if (it != gStorages.end()) {
    it->second.handles++;
    return;
  }
  int64_t bytes = static_cast<int64_t>(t.storage().nbytes());
  gStorages.emplace(key, StorageCount{1, bytes});
  if (bytes > 0 && t.device().is_cpu()) {
    gReportedBytes += bytes;
    gV8External = Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  } else {
    gStorages[key].bytes = 0;  // device memory is not V8's concern
  }
}

void accountRemove(Napi::BasicEnv env, TensorBox* b) {
  if (!b->storageKey) return;
  auto it = gStorages.find(b->storageKey);
  b->storageKey = nullptr;
  if (it == gStorages.end()) return;
  if (--it->second.handles > 0) return;
  int64_t bytes = it->second.bytes;
  gStorages.erase(it);
  if (bytes > 0) {
    gReportedBytes -= bytes;
    gV8External = Napi::MemoryManagement::AdjustExternalMemory(env, -bytes);
  }
}
}  // namespace

void disposeBox(Napi::BasicEnv env, TensorBox* b) {
  if (b->disposed) return;
  accountRemove(env, b);
  b->t = at::Tensor();
  b->disposed = true;
  gLiveTensors--;
}

Napi::Value wrapTensor(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  auto* b = new TensorBox();
  b->t = std::move(t);
  gLiveTensors++;
  accountAdd(env, b);
  // a basic finalizer: runs inside GC, touches no JS (see build.mjs)
  return Napi::External<TensorBox>::New(env, b, [](Napi::BasicEnv env, TensorBox* b) {
    disposeBox(env, b);
    delete b;
  });
}

TensorBox* boxOf(const Napi::Value& v) {
  if (!v.IsExternal()) return nullptr;
  auto* p = v.As<Napi::External<TensorBox>>().Data();
  if (!p || p->magic != kTensorMagic) return nullptr;
  return p;
}

// ---------------------------------------------------------------------------------------------------------------
// argument decoding

static std::string argName(size_t i) { return "argument " + std::to_string(i); }

bool Call::isTensor(size_t i) const { return i < info.Length() && boxOf(info[i]) != nullptr; }

at::Tensor& Call::t(size_t i) const {
  if (i >= info.Length()) throw ArgError(argName(i) + ": expected a tensor, got nothing");
  TensorBox* b = boxOf(info[i]);
  if (!b) throw ArgError(argName(i) + ": expected a tensor handle");
  if (b->disposed) throw ArgError(argName(i) + ": tensor was disposed (used after dispose())");
  return b->t;
}

c10::optional<at::Tensor> Call::optT(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return t(i);
}

double Call::num(size_t i) const {
  if (i >= info.Length() || !info[i].IsNumber()) throw ArgError(argName(i) + ": expected a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

int64_t Call::i64(size_t i) const {
  double d = num(i);
  if (d != static_cast<double>(static_cast<int64_t>(d))) {
    throw ArgError(argName(i) + ": expected an integer, got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

bool Call::b(size_t i) const {
  if (i >= info.Length() || !info[i].IsBoolean()) throw ArgError(argName(i) + ": expected a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string Call::str(size_t i) const {
  if (i >= info.Length() || !info[i].IsString()) throw ArgError(argName(i) + ": expected a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> Call::ints(size_t i) const {
  if (i >= info.Length() || !info[i].IsArray()) throw ArgError(argName(i) + ": expected an array of integers");
  auto a = info[i].As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
    if (!(d == static_cast<double>(static_cast<int64_t>(d)))) {
      throw ArgError(argName(i) + ": element " + std::to_string(k) + " is not an integer");
    }
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

std::vector<at::Tensor> Call::tensors(size_t i) const {
  if (i >= info.Length() || !info[i].IsArray()) throw ArgError(argName(i) + ": expected an array of tensors");
  auto a = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    TensorBox* b = boxOf(a.Get(k));
    if (!b) throw ArgError(argName(i) + ": element " + std::to_string(k) + " is not a tensor");
    if (b->disposed) throw ArgError(argName(i) + ": element " + std::to_string(k) + " was disposed (used after dispose())");
    out.push_back(b->t);
  }
  return out;
}

at::ScalarType Call::dtype(size_t i) const { return parseDType(str(i)); }

at::Device Call::device(size_t i) const {
  std::string s = has(i) ? str(i) : "cpu";
  if (s != "cpu" && s.rfind("cuda", 0) != 0) throw ArgError(argName(i) + ": unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
  return at::Device(s);
}

at::Scalar Call::scalar(size_t i) const {
  if (i < info.Length() && info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  double d = num(i);
  // integers stay integral so that integer tensors keep their dtype (torch's type promotion with Python ints)
  if (d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9007199254740992.0) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

Napi::Value Call::ret(at::Tensor t) const { return wrapTensor(env, std::move(t)); }

Napi::Value Call::retList(const std::vector<at::Tensor>& ts) const {
  auto a = Napi::Array::New(env, ts.size());
  for (size_t k = 0; k < ts.size(); k++) a.Set(static_cast<uint32_t>(k), wrapTensor(env, ts[k]));
  return a;
}

// ---------------------------------------------------------------------------------------------------------------
// error translation

static std::string describeValue(const Napi::Value& v, int depth = 0) {
  if (TensorBox* b = boxOf(v)) return b->disposed ? "<disposed tensor>" : describeTensor(b->t);
  if (v.IsNumber()) {
    std::ostringstream o;
    o << v.As<Napi::Number>().DoubleValue();
    return o.str();
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsUndefined() || v.IsNull()) return "-";
  if (v.IsArray() && depth == 0) {
    auto a = v.As<Napi::Array>();
    std::string s = "[";
    for (uint32_t k = 0; k < a.Length() && k < 8; k++) s += (k ? ", " : "") + describeValue(a.Get(k), 1);
    if (a.Length() > 8) s += ", ...";
    return s + "]";
  }
  if (v.IsTypedArray()) return "typed array(" + std::to_string(v.As<Napi::TypedArray>().ElementLength()) + ")";
  if (v.IsFunction()) return "function";
  return v.IsArray() ? "[...]" : "object";
}

static std::string oneLine(std::string s) {
  for (char& c : s) if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  if (s.size() > 600) s = s.substr(0, 600) + "...";
  return s;
}

Napi::Error engineError(Napi::Env env, const std::string& op, const std::string& msg, const Napi::CallbackInfo* info) {
  std::string full = "medlora engine: " + op + ": " + oneLine(msg);
  if (info && info->Length() > 0) {
    full += " (arguments: ";
    for (size_t i = 0; i < info->Length(); i++) full += (i ? ", " : "") + describeValue((*info)[i]);
    full += ")";
  }
  Napi::Error e = Napi::Error::New(env, full);
  e.Set("engine", Napi::Boolean::New(env, true));
  e.Set("op", Napi::String::New(env, op));
  return e;
}

namespace {
std::mutex gReleaseMutex;
std::vector<napi_ref> gReleases;
std::atomic<bool> gHaveReleases{false};

void drainReleases(napi_env env) {
  if (!gHaveReleases.load(std::memory_order_relaxed)) return;
  std::vector<napi_ref> todo;
  {
    std::lock_guard<std::mutex> lk(gReleaseMutex);
    todo.swap(gReleases);
    gHaveReleases = false;
  }
  for (napi_ref r : todo) napi_delete_reference(env, r);
}
}  // namespace

void releaseRefLater(napi_ref ref) {
  std::lock_guard<std::mutex> lk(gReleaseMutex);
  gReleases.push_back(ref);
  gHaveReleases = true;
}

namespace {
struct OpDef {
  const char* name;
  OpFn fn;
};

Napi::Value dispatch(const Napi::CallbackInfo& info) {
  auto* d = static_cast<OpDef*>(info.Data());
  Napi::Env env = info.Env();
  std::string msg;
  drainReleases(env);
  try {
    Call c(info);
    return d->fn(c);
  } catch (const c10::Error& e) {
    msg = e.msg();
  } catch (const Napi::Error& e) {
    // an exception thrown by JS code we called (checkpoint segment): keep it as it is
    if (e.Value().IsObject() && e.Value().Has("engine")) throw;
    msg = e.Message();
  } catch (const std::exception& e) {
    msg = e.what();
  } catch (...) {
    msg = "unknown native exception";
  }
  throw engineError(env, d->name, msg, &info);
}
}  // namespace

void def(Napi::Env env, Napi::Object exports, const char* name, OpFn fn) {
  auto* d = new OpDef{name, fn};  // lives as long as the process (one per exported function)
  exports.Set(name, Napi::Function::New(env, dispatch, name, d));
}

// ---------------------------------------------------------------------------------------------------------------
// creation and conversion

namespace {

int64_t numelOf(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) {
    if (s < 0) throw ArgError("shape has a negative size");
    n *= s;
  }
  return n;
}

std::string shapeStr(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

at::ScalarType typedArrayDType(napi_typedarray_type t) {
  switch (t) {
    case napi_float32_array: return at::kFloat;
    case napi_float64_array: return at::kDouble;
    case napi_bigint64_array: return at::kLong;
    case napi_int32_array: return at::kInt;
    case napi_int8_array: return at::kChar;
    case napi_uint8_array: return at::kByte;
    case napi_int16_array: return at::kShort;
    default: throw ArgError("unsupported typed array (use Float32Array, Float64Array, BigInt64Array, Int32Array, Int8Array or Uint8Array)");
  }
}

at::TensorOptions opts(at::ScalarType dt, at::Device dev) { return at::TensorOptions().dtype(dt).device(dev); }

/** Copy a contiguous CPU tensor's bytes into a fresh typed array of the matching kind. */
Napi::Value toTypedArray(Napi::Env env, at::Tensor t) {
  t = t.detach();
  if (!t.device().is_cpu()) t = t.cpu();
  if (t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf) t = t.to(at::kFloat);
  t = t.contiguous();
  size_t n = static_cast<size_t>(t.numel());
  size_t bytes = t.nbytes();
  auto copy = [&](void* dst) { if (bytes) std::memcpy(dst, t.data_ptr(), bytes); };
  switch (t.scalar_type()) {
    case at::kFloat: { auto a = Napi::Float32Array::New(env, n); copy(a.Data()); return a; }
    case at::kDouble: { auto a = Napi::Float64Array::New(env, n); copy(a.Data()); return a; }
    case at::kLong: { auto a = Napi::BigInt64Array::New(env, n); copy(a.Data()); return a; }
    case at::kInt: { auto a = Napi::Int32Array::New(env, n); copy(a.Data()); return a; }
    case at::kShort: { auto a = Napi::Int16Array::New(env, n); copy(a.Data()); return a; }
    case at::kChar: { auto a = Napi::Int8Array::New(env, n); copy(a.Data()); return a; }
    case at::kByte:
    case at::kBool: { auto a = Napi::Uint8Array::New(env, n); copy(a.Data()); return a; }
    default: throw ArgError("cannot convert dtype " + dtypeName(t.scalar_type()) + " to a typed array");
  }
}

void registerCore(Napi::Env env, Napi::Object ex) {
  // fromTyped(typedArray, dtype, shape, device?): copy; the typed array's kind is cast to dtype when they differ
  def(env, ex, "fromTyped", [](Call& c) -> Napi::Value {
    if (!c.info[0].IsTypedArray()) throw ArgError("argument 0: expected a typed array");
    auto ta = c.info[0].As<Napi::TypedArray>();
    at::ScalarType src = typedArrayDType(ta.TypedArrayType());
    at::ScalarType dst = c.dtype(1);
    auto shape = c.ints(2);
    int64_t n = numelOf(shape);
    if (static_cast<int64_t>(ta.ElementLength()) != n) {
      throw ArgError("data has " + std::to_string(ta.ElementLength()) + " elements but shape " + shapeStr(shape) +
                     " needs " + std::to_string(n));
    }
    at::Tensor t = at::empty(shape, opts(src, at::kCPU));
    if (n) std::memcpy(t.data_ptr(), static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), t.nbytes());
    if (dst != src) t = t.to(dst);
    at::Device dev = c.device(3);
    if (!dev.is_cpu()) t = t.to(dev);
    return c.ret(t);
  });
  // fromBytes(Uint8Array, dtype, shape): raw little-endian bytes, copied
  def(env, ex, "fromBytes", [](Call& c) -> Napi::Value {
    if (!c.info[0].IsTypedArray() || c.info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw ArgError("argument 0: expected a Uint8Array of raw bytes");
    }
    auto u8 = c.info[0].As<Napi::Uint8Array>();
    at::ScalarType dt = c.dtype(1);
    auto shape = c.ints(2);
    int64_t need = numelOf(shape) * static_cast<int64_t>(c10::elementSize(dt));
    if (static_cast<int64_t>(u8.ByteLength()) != need) {
      throw ArgError("got " + std::to_string(u8.ByteLength()) + " bytes but " + dtypeName(dt) + shapeStr(shape) +
                     " needs " + std::to_string(need));
    }
    at::Tensor t = at::empty(shape, opts(dt, at::kCPU));
    if (need) std::memcpy(t.data_ptr(), u8.Data(), static_cast<size_t>(need));
    return c.ret(t);
  });
  // fromFile(path, byteOffset, dtype, shape): pread straight into the new tensor's storage (no second copy)
  def(env, ex, "fromFile", [](Call& c) -> Napi::Value {
    std::string path = c.str(0);
    int64_t offset = c.i64(1);
    at::ScalarType dt = c.dtype(2);
    auto shape = c.ints(3);
    if (offset < 0) throw ArgError("byte offset must be >= 0");
    int64_t need = numelOf(shape) * static_cast<int64_t>(c10::elementSize(dt));
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw ArgError("cannot open " + path + ": " + std::strerror(errno));
    at::Tensor t;
    try {
      off_t size = ::lseek(fd, 0, SEEK_END);
      if (size < offset + need) {
        throw ArgError(path + ": needs bytes [" + std::to_string(offset) + ", " + std::to_string(offset + need) +
                       ") for " + dtypeName(dt) + shapeStr(shape) + " but the file has " + std::to_string(size) + " bytes");
      }
      t = at::empty(shape, opts(dt, at::kCPU));
      auto* dst = static_cast<char*>(t.data_ptr());
      int64_t done = 0;
      while (done < need) {
        ssize_t r = ::pread(fd, dst + done, static_cast<size_t>(need - done), offset + done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) throw ArgError("reading " + path + " failed at byte " + std::to_string(offset + done) + ": " + (r < 0 ? std::strerror(errno) : "unexpected end of file"));
        done += r;
      }
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    return c.ret(t);
  });

  def(env, ex, "empty", [](Call& c) -> Napi::Value { return c.ret(at::empty(c.ints(0), opts(c.dtype(1), c.device(2)))); });
  def(env, ex, "zeros", [](Call& c) -> Napi::Value { return c.ret(at::zeros(c.ints(0), opts(c.dtype(1), c.device(2)))); });
  def(env, ex, "ones", [](Call& c) -> Napi::Value { return c.ret(at::ones(c.ints(0), opts(c.dtype(1), c.device(2)))); });
  def(env, ex, "full", [](Call& c) -> Napi::Value { return c.ret(at::full(c.ints(0), c.scalar(1), opts(c.dtype(2), c.device(3)))); });
  def(env, ex, "arange", [](Call& c) -> Napi::Value {
    return c.ret(at::arange(c.scalar(0), c.scalar(1), c.scalar(2), opts(c.dtype(3), c.device(4))));
  });
  def(env, ex, "linspace", [](Call& c) -> Napi::Value {
    return c.ret(at::linspace(c.scalar(0), c.scalar(1), c.i64(2), opts(c.dtype(3), c.device(4))));
  });
  def(env, ex, "randn", [](Call& c) -> Napi::Value { return c.ret(at::randn(c.ints(0), opts(c.dtype(1), c.device(2)))); });
  def(env, ex, "rand", [](Call& c) -> Napi::Value { return c.ret(at::rand(c.ints(0), opts(c.dtype(1), c.device(2)))); });
  def(env, ex, "randint", [](Call& c) -> Napi::Value {
    return c.ret(at::randint(c.i64(0), c.i64(1), c.ints(2), opts(c.dtype(3), c.device(4))));
  });

  def(env, ex, "toArray", [](Call& c) -> Napi::Value { return toTypedArray(c.env, c.t(0)); });
  def(env, ex, "toFloat32Array", [](Call& c) -> Napi::Value { return toTypedArray(c.env, c.t(0).to(at::kFloat)); });
  def(env, ex, "toBytes", [](Call& c) -> Napi::Value {
    at::Tensor t = c.t(0).detach().cpu().contiguous();
    auto a = Napi::Uint8Array::New(c.env, t.nbytes());
    if (t.nbytes()) std::memcpy(a.Data(), t.data_ptr(), t.nbytes());
    return a;
  });
  def(env, ex, "item", [](Call& c) -> Napi::Value {
    const at::Tensor& t = c.t(0);
    if (t.numel() != 1) throw ArgError("item() needs exactly one element, tensor has " + std::to_string(t.numel()));
    if (t.scalar_type() == at::kBool) return Napi::Boolean::New(c.env, t.item<bool>());
    return Napi::Number::New(c.env, t.item<double>());
  });

  // metadata
  def(env, ex, "shape", [](Call& c) -> Napi::Value {
    const at::Tensor& t = c.t(0);
    auto a = Napi::Array::New(c.env, t.dim());
    for (int64_t i = 0; i < t.dim(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(c.env, static_cast<double>(t.size(i))));
    return a;
  });
  def(env, ex, "strides", [](Call& c) -> Napi::Value {
    const at::Tensor& t = c.t(0);
    auto a = Napi::Array::New(c.env, t.dim());
    for (int64_t i = 0; i < t.dim(); i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(c.env, static_cast<double>(t.stride(i))));
    return a;
  });
  def(env, ex, "dtype", [](Call& c) -> Napi::Value { return Napi::String::New(c.env, dtypeName(c.t(0).scalar_type())); });
  def(env, ex, "device", [](Call& c) -> Napi::Value { return Napi::String::New(c.env, c.t(0).device().str()); });
  def(env, ex, "numel", [](Call& c) -> Napi::Value { return Napi::Number::New(c.env, static_cast<double>(c.t(0).numel())); });
  def(env, ex, "isContiguous", [](Call& c) -> Napi::Value { return Napi::Boolean::New(c.env, c.t(0).is_contiguous()); });
  def(env, ex, "requiresGrad", [](Call& c) -> Napi::Value { return Napi::Boolean::New(c.env, c.t(0).requires_grad()); });
  def(env, ex, "describe", [](Call& c) -> Napi::Value { return Napi::String::New(c.env, describeTensor(c.t(0))); });
  def(env, ex, "dispose", [](Call& c) -> Napi::Value {
    TensorBox* b = c.has(0) ? boxOf(c.info[0]) : nullptr;
    if (!b) throw ArgError("argument 0: expected a tensor handle");
    disposeBox(c.env, b);
    return c.env.Undefined();
  });
  def(env, ex, "isDisposed", [](Call& c) -> Napi::Value {
    TensorBox* b = c.has(0) ? boxOf(c.info[0]) : nullptr;
    if (!b) throw ArgError("argument 0: expected a tensor handle");
    return Napi::Boolean::New(c.env, b->disposed);
  });
  def(env, ex, "isTensor", [](Call& c) -> Napi::Value { return Napi::Boolean::New(c.env, c.isTensor(0)); });
  def(env, ex, "liveTensorCount", [](Call& c) -> Napi::Value { return Napi::Number::New(c.env, static_cast<double>(gLiveTensors)); });
  def(env, ex, "externalMemory", [](Call& c) -> Napi::Value {
    auto o = Napi::Object::New(c.env);
    o.Set("reported", Napi::Number::New(c.env, static_cast<double>(gReportedBytes)));
    o.Set("v8", Napi::Number::New(c.env, static_cast<double>(gV8External)));
    return o;
  });
  def(env, ex, "sameStorage", [](Call& c) -> Napi::Value {
    return Napi::Boolean::New(c.env, c.t(0).has_storage() && c.t(1).has_storage() && c.t(0).storage().is_alias_of(c.t(1).storage()));
  });

  // global settings
  def(env, ex, "manualSeed", [](Call& c) -> Napi::Value {
    double d = c.num(0);
    if (d < 0 || d != static_cast<double>(static_cast<uint64_t>(d))) throw ArgError("seed must be a non-negative integer");
    at::manual_seed(static_cast<uint64_t>(d));  // seeds the CPU generator and every CUDA device's
    return c.env.Undefined();
  });
  def(env, ex, "setNumThreads", [](Call& c) -> Napi::Value {
    int64_t n = c.i64(0);
    if (n < 1) throw ArgError("thread count must be >= 1");
    at::set_num_threads(static_cast<int>(n));
    return c.env.Undefined();
  });
  def(env, ex, "getNumThreads", [](Call& c) -> Napi::Value { return Napi::Number::New(c.env, at::get_num_threads()); });
  // tuneMalloc(mmapThreshold, trimThreshold, topPad): glibc mallopt (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD), so
  // that tensors up to mmapThreshold bytes are reused from the heap instead of being mmap'ed, page-faulted and unmapped
  // on every allocation (src/tensor/native.ts explains the defaults). Returns false where the C library is not glibc.
  def(env, ex, "tuneMalloc", [](Call& c) -> Napi::Value {
#ifdef __GLIBC__
    bool ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(c.i64(0))) == 1;
    ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(c.i64(1))) == 1 && ok;
    ok = mallopt(M_TOP_PAD, static_cast<int>(c.i64(2))) == 1 && ok;
    if (!ok) throw ArgError("mallopt refused a value (mmap threshold at most 32 MiB, the others below 2 GiB)");
    return Napi::Boolean::New(c.env, true);
#else
    return Napi::Boolean::New(c.env, false);
#endif
  });
  // mallocMmapMax(n): glibc mallopt(M_MMAP_MAX, n). 0 = no block is ever mmap'ed, every size comes from the heap and
  // is reused there (the training loop's blocks above glibc's 32 MiB mmap ceiling: src/tensor/native.ts
  // reuseLargeBlocks); 65536 = glibc's default (DEFAULT_MMAP_MAX in malloc.c). False where the C library is not glibc.
  def(env, ex, "mallocMmapMax", [](Call& c) -> Napi::Value {
#ifdef __GLIBC__
    const int64_t n = c.i64(0);
    if (n < 0 || n > (1 << 30)) throw ArgError("mallocMmapMax: n must be in [0, 2^30], got " + std::to_string(n));
    if (mallopt(M_MMAP_MAX, static_cast<int>(n)) != 1) throw ArgError("mallopt refused M_MMAP_MAX " + std::to_string(n));
    return Napi::Boolean::New(c.env, true);
#else
    return Napi::Boolean::New(c.env, false);
#endif
  });
  // parallelProbe(n): how many distinct threads an at::parallel_for of n items (grain 1) compiled into THIS addon ran
  // on. ATen's parallel_for is a header template: compiled without -fopenmp its `#pragma omp parallel` is ignored and
  // every native kernel of ours (dropout) runs on the calling thread alone (test/engine/dropout.test.ts checks this).
  def(env, ex, "parallelProbe", [](Call& c) -> Napi::Value {
    const int64_t n = c.i64(0);
    std::mutex m;
    std::unordered_map<std::thread::id, int> seen;
    at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
      // a little work per item, so that one thread cannot finish the whole range before the others start
      volatile double acc = 0;
      for (int64_t i = b; i < e; i++)
        for (int k = 0; k < 20000; k++) acc = acc + 1e-9 * static_cast<double>(k);
      std::lock_guard<std::mutex> g(m);
      seen[std::this_thread::get_id()]++;
    });
    return Napi::Number::New(c.env, static_cast<double>(seen.size()));
  });
  def(env, ex, "cudaIsAvailable", [](Call& c) -> Napi::Value { return Napi::Boolean::New(c.env, torch::cuda::is_available()); });
  def(env, ex, "cudaDeviceCount", [](Call& c) -> Napi::Value {
    return Napi::Number::New(c.env, torch::cuda::is_available() ? static_cast<double>(torch::cuda::device_count()) : 0.0);
  });
  // cudaSynchronize(index): wait for every kernel queued on the device (timing a CUDA step without it measures the queue)
  def(env, ex, "cudaSynchronize", [](Call& c) -> Napi::Value {
    if (!torch::cuda::is_available()) throw ArgError("no CUDA device is visible");
    torch::cuda::synchronize(c.i64(0));
    return c.env.Undefined();
  });
  // cudaMemoryStats(index) -> {allocated, peakAllocated, reserved, peakReserved} bytes of the caching allocator, as
  // torch.cuda.memory_allocated / max_memory_allocated / memory_reserved / max_memory_reserved report them
  def(env, ex, "cudaMemoryStats", [](Call& c) -> Napi::Value {
#ifdef MEDLORA_WITH_CUDA
    if (!torch::cuda::is_available()) throw ArgError("no CUDA device is visible");
    auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(c.i64(0)));
    // index 0 = StatType::AGGREGATE (c10/core/CachingDeviceAllocator.h)
    const auto& a = st.allocated_bytes[0];
    const auto& r = st.reserved_bytes[0];
    auto o = Napi::Object::New(c.env);
    o.Set("allocated", static_cast<double>(a.current));
    o.Set("peakAllocated", static_cast<double>(a.peak));
    o.Set("reserved", static_cast<double>(r.current));
    o.Set("peakReserved", static_cast<double>(r.peak));
    return o;
#else
    throw ArgError("this addon was built without CUDA");
#endif
  });
  // cudaResetPeakMemoryStats(index): torch.cuda.reset_peak_memory_stats
  def(env, ex, "cudaResetPeakMemoryStats", [](Call& c) -> Napi::Value {
#ifdef MEDLORA_WITH_CUDA
    if (!torch::cuda::is_available()) throw ArgError("no CUDA device is visible");
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(c.i64(0)));
    return c.env.Undefined();
#else
    throw ArgError("this addon was built without CUDA");
#endif
  });
  def(env, ex, "engineInfo", [](Call& c) -> Napi::Value {
    auto o = Napi::Object::New(c.env);
    o.Set("torchVersion", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH));
    o.Set("cxx11Abi", Napi::Number::New(c.env, _GLIBCXX_USE_CXX11_ABI));
#ifdef MEDLORA_WITH_CUDA
    o.Set("compiledWithCuda", true);
#else
    o.Set("compiledWithCuda", false);
#endif
    o.Set("hasMKL", at::hasMKL());
    o.Set("hasMKLDNN", at::hasMKLDNN());
    o.Set("hasOpenMP", at::hasOpenMP());
    o.Set("parallelInfo", at::get_parallel_info());
    return o;
  });
}

}  // namespace

}  // namespace medlora

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  medlora::registerCore(env, exports);
  medlora::registerOps(env, exports);
  medlora::registerDropout(env, exports);
  medlora::registerAutograd(env, exports);
  medlora::registerOptim(env, exports);
  medlora::registerDist(env, exports);
  medlora::registerNf4(env, exports);
  return exports;
}

NODE_API_MODULE(medlora, Init)

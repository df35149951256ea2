// Process groups from libtorch's own c10d (torch/csrc/distributed/c10d): a TCPStore rendezvous (the env:// semantics
// torchrun uses), ProcessGroupGloo on CPU and ProcessGroupNCCL on CUDA (when compiled against a CUDA torch with
// USE_C10D_NCCL), and the blocking collectives the trainer needs: all-reduce, broadcast, all-gather, barrier.
// Every failure (a peer that died, a timeout) becomes a JS Error that names this rank; nothing here aborts the process.
#include "common.h"

#ifdef MEDLORA_WITH_C10D
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

#include <chrono>
#include <cstdlib>

namespace medlora {

namespace {

using V = Napi::Value;

constexpr uint32_t kGroupMagic = 0x4d4c4431;  // "MLD1"

#ifdef MEDLORA_WITH_C10D

struct GroupBox {
  uint32_t magic = kGroupMagic;
  int rank = 0, size = 1;
  std::string backend;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> pg;
};

GroupBox* groupOf(const Call& c, size_t i) {
  if (i < c.size() && c.info[i].IsExternal()) {
    auto* b = c.info[i].As<Napi::External<GroupBox>>().Data();
    if (b && b->magic == kGroupMagic) {
      if (!b->pg) throw ArgError("the process group was destroyed");
      return b;
    }
  }
  throw ArgError("argument " + std::to_string(i) + ": expected a process group handle");
}

/** c10d errors carry a C++ backtrace in what(); keep the message only, prefixed with the rank that saw it. */
[[noreturn]] void rethrowWithRank(const GroupBox* g, const std::string& what) {
  std::string who = g ? "rank " + std::to_string(g->rank) + "/" + std::to_string(g->size) : "process group";
  try {
    throw;
  } catch (const c10::Error& e) {
    throw std::runtime_error(who + ": " + what + ": " + e.msg());
  } catch (const ArgError&) {
    throw;
  } catch (const std::exception& e) {
    throw std::runtime_error(who + ": " + what + ": " + e.what());
  }
}

/** Wait for a collective; a timeout or a dead peer throws (c10d::DistBackendError / DistNetworkError). */
void waitWork(GroupBox* g, const c10::intrusive_ptr<c10d::Work>& w) {
  if (!w->wait(g->timeout)) throw std::runtime_error("timed out after " + std::to_string(g->timeout.count()) + " ms");
}

c10d::ReduceOp parseOp(const std::string& s) {
  if (s == "sum") return c10d::ReduceOp::SUM;
  if (s == "max") return c10d::ReduceOp::MAX;
  if (s == "min") return c10d::ReduceOp::MIN;
  throw ArgError("reduce op must be sum, max or min (got '" + s + "')");
}

/** Gloo's transport: GLOO_SOCKET_IFNAME as torch reads it; loopback when the master is local; else the hostname. */
std::shared_ptr<::gloo::transport::Device> glooDevice(const std::string& masterAddr) {
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    std::string first(ifname);
    first = first.substr(0, first.find(','));
    return c10d::ProcessGroupGloo::createDeviceForInterface(first);
  }
  if (masterAddr == "127.0.0.1" || masterAddr == "localhost" || masterAddr == "::1")
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

void registerAll(Napi::Env env, Napi::Object ex) {
  // distInit({rank, worldSize, masterAddr, masterPort, timeoutMs, backend, agentStore, prefix}) -> group handle.
  // agentStore: the TCPStore server is torchrun's agent (TORCHELASTIC_USE_AGENT_STORE=True), so rank 0 is a client.
  def(env, ex, "distInit", [](Call& c) -> V {
    if (!c.has(0) || !c.info[0].IsObject()) throw ArgError("distInit expects an options object");
    Napi::Object o = c.info[0].As<Napi::Object>();
    auto num = [&](const char* k) -> double {
      Napi::Value v = o.Get(k);
      if (!v.IsNumber()) throw ArgError(std::string("distInit: option '") + k + "' must be a number");
      return v.As<Napi::Number>().DoubleValue();
    };
    auto str = [&](const char* k, const char* dflt) -> std::string {
      Napi::Value v = o.Get(k);
      return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string(dflt);
    };
    int rank = static_cast<int>(num("rank")), size = static_cast<int>(num("worldSize"));
    int port = static_cast<int>(num("masterPort"));
    double timeoutMs = num("timeoutMs");
    if (size < 1 || rank < 0 || rank >= size) throw ArgError("distInit: need 0 <= rank < worldSize");
    if (port < 1 || port > 65535) throw ArgError("distInit: masterPort must be in 1..65535");
    if (!(timeoutMs >= 1)) throw ArgError("distInit: timeoutMs must be >= 1");
    bool agentStore = o.Get("agentStore").ToBoolean();
    std::string addr = str("masterAddr", "127.0.0.1"), backend = str("backend", "gloo"), prefix = str("prefix", "medlora/");

    auto g = std::make_unique<GroupBox>();
    g->rank = rank;
    g->size = size;
    g->backend = backend;
    g->timeout = std::chrono::milliseconds(static_cast<int64_t>(timeoutMs));
    try {
      c10d::TCPStoreOptions so;
      so.port = static_cast<uint16_t>(port);
      so.isServer = rank == 0 && !agentStore;
      so.numWorkers = agentStore ? std::nullopt : std::optional<std::size_t>(size);
      so.waitWorkers = !agentStore;
      so.timeout = g->timeout;
      auto tcp = c10::make_intrusive<c10d::TCPStore>(addr, so);
      g->store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);
      if (backend == "gloo") {
        auto opts = c10d::ProcessGroupGloo::Options::create(g->timeout);
        opts->devices.push_back(glooDevice(addr));
        g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, size, opts);
      } else if (backend == "nccl") {
#ifdef USE_C10D_NCCL
        auto opts = c10d::ProcessGroupNCCL::Options::create();
        opts->timeout = g->timeout;
        g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, rank, size, opts);
#else
        throw ArgError("backend 'nccl' needs the addon built against a CUDA PyTorch with NCCL (this build has Gloo only)");
#endif
      } else {
        throw ArgError("backend must be 'gloo' or 'nccl' (got '" + backend + "')");
      }
    } catch (...) {
      rethrowWithRank(g.get(), "joining the process group at " + addr + ":" + std::to_string(port));
    }
    GroupBox* raw = g.release();
    return Napi::External<GroupBox>::New(c.env, raw, [](Napi::BasicEnv, GroupBox* b) { delete b; });
  });

  // distAllReduce(group, tensors[], op): in place, blocking (wait with the group's timeout)
  def(env, ex, "distAllReduce", [](Call& c) -> V {
    GroupBox* g = groupOf(c, 0);
    std::vector<at::Tensor> ts = c.tensors(1);
    c10d::AllreduceOptions opts;
    opts.reduceOp = parseOp(c.has(2) ? c.str(2) : "sum");
    opts.timeout = g->timeout;
    try {
      for (auto& t : ts) {
        if (!t.is_contiguous()) throw ArgError("all-reduce needs contiguous tensors (" + describeTensor(t) + ")");
        std::vector<at::Tensor> one{t};
        waitWork(g, g->pg->allreduce(one, opts));
      }
    } catch (...) {
      rethrowWithRank(g, "all-reduce");
    }
    return c.env.Undefined();
  });

  // distBroadcast(group, tensors[], root): in place, blocking
  def(env, ex, "distBroadcast", [](Call& c) -> V {
    GroupBox* g = groupOf(c, 0);
    std::vector<at::Tensor> ts = c.tensors(1);
    c10d::BroadcastOptions opts;
    opts.rootRank = c.has(2) ? c.i64(2) : 0;
    opts.timeout = g->timeout;
    if (opts.rootRank < 0 || opts.rootRank >= g->size) throw ArgError("broadcast root must be a rank of the group");
    try {
      for (auto& t : ts) {
        if (!t.is_contiguous()) throw ArgError("broadcast needs contiguous tensors (" + describeTensor(t) + ")");
        std::vector<at::Tensor> one{t};
        waitWork(g, g->pg->broadcast(one, opts));
      }
    } catch (...) {
      rethrowWithRank(g, "broadcast");
    }
    return c.env.Undefined();
  });

  // distAllGather(group, tensor) -> tensor [worldSize, ...shape] (every rank's tensor, in rank order)
  def(env, ex, "distAllGather", [](Call& c) -> V {
    GroupBox* g = groupOf(c, 0);
    at::Tensor t = c.t(1).contiguous();
    std::vector<at::Tensor> outs;
    for (int r = 0; r < g->size; r++) outs.push_back(at::empty_like(t));
    std::vector<std::vector<at::Tensor>> out{outs};
    std::vector<at::Tensor> in{t};
    c10d::AllgatherOptions opts;
    opts.timeout = g->timeout;
    try {
      waitWork(g, g->pg->allgather(out, in, opts));
    } catch (...) {
      rethrowWithRank(g, "all-gather");
    }
    return c.ret(at::stack(out[0], 0));
  });

  // distBarrier(group)
  def(env, ex, "distBarrier", [](Call& c) -> V {
    GroupBox* g = groupOf(c, 0);
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    try {
      waitWork(g, g->pg->barrier(opts));
    } catch (...) {
      rethrowWithRank(g, "barrier");
    }
    return c.env.Undefined();
  });

  // distInfo(group) -> {rank, worldSize, backend, timeoutMs}
  def(env, ex, "distInfo", [](Call& c) -> V {
    GroupBox* g = groupOf(c, 0);
    Napi::Object o = Napi::Object::New(c.env);
    o.Set("rank", g->rank);
    o.Set("worldSize", g->size);
    o.Set("backend", g->backend);
    o.Set("timeoutMs", static_cast<double>(g->timeout.count()));
    return o;
  });

  // distDestroy(group): drop the backend and the store (joins gloo's threads); further use is an error
  def(env, ex, "distDestroy", [](Call& c) -> V {
    if (c.has(0) && c.info[0].IsExternal()) {
      auto* b = c.info[0].As<Napi::External<GroupBox>>().Data();
      if (b && b->magic == kGroupMagic) {
        b->pg.reset();
        b->store.reset();
      }
    }
    return c.env.Undefined();
  });
}

#else  // libtorch without c10d headers (e.g. Debian's 1.13): the functions exist and say why they cannot work

void registerAll(Napi::Env env, Napi::Object ex) {
  for (const char* name : {"distInit", "distAllReduce", "distBroadcast", "distAllGather", "distBarrier", "distInfo"}) {
    def(env, ex, name, [](Call& c) -> V {
      throw std::runtime_error("this addon was built without torch.distributed (c10d): libtorch " +
                               std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                               " has no c10d headers of the 2.x Backend API; rebuild against a pip PyTorch 2.x");
    });
  }
  def(env, ex, "distDestroy", [](Call& c) -> V { return c.env.Undefined(); });
}

#endif

}  // namespace

void registerDist(Napi::Env env, Napi::Object exports) {
  registerAll(env, exports);
  exports.Set("distAvailable", Napi::Boolean::New(env,
#ifdef MEDLORA_WITH_C10D
                                                  true
#else
                                                  false
#endif
                                                  ));
  exports.Set("distNccl", Napi::Boolean::New(env,
#ifdef USE_C10D_NCCL
                                             true
#else
                                             false
#endif
                                             ));
}

}  // namespace medlora

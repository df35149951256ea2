// See gloo/context.h in this folder: declarations-only stand-in for the gloo headers pip libtorch does not ship.
// The virtual functions are those c10d's GlooStore overrides (its V2 extension stays off: GLOO_STORE_HAS_STORE_V2 is
// not defined); medlora never creates a GlooStore, libtorch does, with its own gloo.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace gloo {
namespace rendezvous {
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) = 0;
};
}  // namespace rendezvous
}  // namespace gloo

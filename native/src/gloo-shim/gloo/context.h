// Declarations-only stand-in for gloo's headers, used when libtorch ships c10d's headers but not gloo's (the pip
// wheels). c10d/ProcessGroupGloo.hpp holds gloo objects only by (shared/unique) pointer, so the class layout medlora
// sees does not depend on gloo; these files declare just the names that header mentions. The implementation is the
// gloo compiled into libtorch_cpu. Real gloo headers, when present in the libtorch include dir, are used instead.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);  // defined in libtorch's gloo; never called by medlora
};
}  // namespace gloo

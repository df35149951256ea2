// See gloo/context.h in this folder: declarations-only stand-in for the gloo headers pip libtorch does not ship.
#pragma once
namespace gloo {
namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport
}  // namespace gloo

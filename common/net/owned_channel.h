// Hands ownership of heap objects between two threads over an inproc:// PAIR: the frame carries
// the pointer, so nothing is copied or serialized. Each end belongs to one thread; an object in
// flight is owned by the channel until the other end receives it.
#pragma once

#include <memory>
#include <string>

#include <zmq.hpp>

#include "common/net/socket.h"
#include "common/error.h"

namespace wafer::net {

// Both ends of one channel. Made on one thread; hand `connected` to the other thread before it
// starts (thread start is the memory barrier a socket needs to change threads).
struct OwnedChannel {
  std::unique_ptr<Socket> bound;
  std::unique_ptr<Socket> connected;
};

// The options of both ends: linger 0 and 1000 objects in flight each way.
SocketOptions OwnedChannelOptions();

// Binds a PAIR at `endpoint` and connects a PAIR to it, both in `context`.
// Returns:
//   OK               - both ends, already connected: a send on either end finds its peer.
//   INVALID_ARGUMENT - `endpoint` is not inproc:// (pointers mean nothing in another process).
//   UNAVAILABLE      - the endpoint is already bound in `context`, or the context is closing.
// A failure's message names the endpoint and the reason.
HostResult<OwnedChannel> OpenOwnedChannel(zmq::context_t& context, const std::string& endpoint);

namespace internal {
// The untyped core of SendOwned/ReceiveOwned (owned_channel.cc).
bool SendPointer(Socket& end, void* pointer);
void* ReceivePointer(Socket& end);
}  // namespace internal

// Sends `item` to the other end without blocking. Returns true when the other end now owns it;
// false when it could not be queued (no peer, or 1000 objects already in flight), and then
// `item` has been destroyed here. REQUIRES: the receiving end calls ReceiveOwned<T> with the
// same T.
template <typename T>
bool SendOwned(Socket& end, std::unique_ptr<T> item) {
  if (!internal::SendPointer(end, item.get())) return false;
  item.release();  // Now owned by the receiver.
  return true;
}

// Receives one object without blocking; nullptr when none is waiting (or the channel failed).
// Objects still in flight when the channel is destroyed are leaked: drain with ReceiveOwned first.
template <typename T>
std::unique_ptr<T> ReceiveOwned(Socket& end) {
  return std::unique_ptr<T>(static_cast<T*>(internal::ReceivePointer(end)));
}

}  // namespace wafer::net

#include "common/net/owned_channel.h"

#include <cstring>
#include <utility>

namespace wafer::net {
namespace {

// A received frame that carries a pointer, or nullptr (wrong size: not from SendPointer).
void* PointerIn(std::span<const std::byte> frame) {
  void* pointer = nullptr;
  if (frame.size() != sizeof(pointer)) return nullptr;
  std::memcpy(&pointer, frame.data(), sizeof(pointer));
  return pointer;
}

}  // namespace

SocketOptions OwnedChannelOptions() {
  SocketOptions options;
  options.send_high_water_mark = 1000;
  options.receive_high_water_mark = 1000;
  options.linger_ms = 0;
  return options;
}

HostResult<OwnedChannel> OpenOwnedChannel(zmq::context_t& context, const std::string& endpoint) {
  if (endpoint.rfind("inproc://", 0) != 0) {
    return Error{StatusCode::kInvalidArgument,
                 "an owned channel needs an inproc:// endpoint, not " + endpoint};
  }
  OwnedChannel channel;
  WAFER_HOST_ASSIGN_OR_RETURN(channel.bound, Socket::Bind(context, SocketType::kPair, endpoint,
                                                          OwnedChannelOptions()));
  WAFER_HOST_ASSIGN_OR_RETURN(
      channel.connected,
      Socket::Connect(context, SocketType::kPair, endpoint, OwnedChannelOptions()));
  return channel;
}

namespace internal {

bool SendPointer(Socket& end, void* pointer) {
  return end.Send(std::as_bytes(std::span(&pointer, 1))) == SendOutcome::kSent;
}

void* ReceivePointer(Socket& end) {
  Result<Message> message = end.Receive(0);
  if (!message.ok() || message->frame_count() != 1) return nullptr;
  return PointerIn(message->frame(0));
}

}  // namespace internal
}  // namespace wafer::net

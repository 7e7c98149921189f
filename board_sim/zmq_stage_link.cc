#include "board_sim/zmq_stage_link.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace wafer::sim {

Result<uint32_t> ZmqStageLink::Open(std::span<const char> endpoint) {
  const std::string wanted(endpoint.begin(), endpoint.end());
  for (uint32_t i = 0; i < kMaxLinks; ++i) {
    if (links_[i].socket != nullptr && links_[i].endpoint == wanted) return i;
  }
  for (uint32_t i = 0; i < kMaxLinks; ++i) {
    if (links_[i].socket != nullptr) continue;
    net::SocketOptions options;
    // Nothing waits on the queue when the link is torn down.
    auto socket = net::Socket::Connect(context_, net::SocketType::kDealer, wanted, options);
    if (!socket.ok()) return InvalidArgument();
    links_[i] = Link{wanted, std::move(socket).value()};
    return i;
  }
  return ResourceExhausted();
}

Status ZmqStageLink::Send(uint32_t link, std::span<const std::byte> frame) {
  if (link >= kMaxLinks || links_[link].socket == nullptr) return Unavailable();
  return links_[link].socket->Send(frame) == net::SendOutcome::kSent ? OkStatus() : Unavailable();
}

Result<size_t> ZmqStageLink::Receive(uint32_t link, std::span<std::byte> buffer,
                                     uint32_t timeout_ms) {
  if (link >= kMaxLinks || links_[link].socket == nullptr) return Unavailable();
  const int wait_ms = static_cast<int>(std::min<uint32_t>(timeout_ms, std::numeric_limits<int>::max()));
  for (;;) {
    Result<net::Message> received = links_[link].socket->Receive(wait_ms);
    if (received.status().code() == StatusCode::kDeadlineExceeded) return DeadlineExceeded();
    if (!received.ok()) return Unavailable();
    if (received->frame_count() != 1) continue;  // A board answers with one frame: dropped.
    const std::span<const std::byte> payload = received->frame(0);
    const size_t copied = std::min(buffer.size(), payload.size());
    if (copied > 0) std::memcpy(buffer.data(), payload.data(), copied);
    return payload.size();
  }
}

}  // namespace wafer::sim

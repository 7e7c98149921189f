#include "board_sim/zmq_host_port.h"

#include <algorithm>
#include <cstring>
#include <limits>

namespace wafer::sim {

Result<size_t> ZmqHostPort::Receive(std::span<std::byte> buffer, int64_t deadline_ns) {
  last_.reset();  // The firmware is done with it: free it (and its sender's bytes) now.
  for (;;) {
    const int64_t left_ms = std::clamp<int64_t>((deadline_ns - clock_.NowNanos()) / 1000000, 0,
                                                std::numeric_limits<int>::max());
    Result<net::RouterReceipt> received =
        net::ReceiveFromPeerWithAttachment(socket_, static_cast<int>(left_ms));
    if (received.status().code() == StatusCode::kDeadlineExceeded) return DeadlineExceeded();
    if (!received.ok()) return Unavailable();
    auto* message = std::get_if<net::PeerMessage>(&*received);
    if (message == nullptr) {
      ++malformed_envelopes_;  // No payload to answer: dropped and counted.
      continue;
    }
    peer_ = std::move(message->peer);
    envelope_ = message->envelope;
    const std::span<const std::byte> payload = message->payload();
    const size_t copied = std::min(buffer.size(), payload.size());
    if (copied > 0) std::memcpy(buffer.data(), payload.data(), copied);
    if (message->has_attachment) last_.emplace(std::move(*message));
    return payload.size();
  }
}

std::span<const std::byte> ZmqHostPort::attachment() const {
  return last_.has_value() ? last_->attachment() : std::span<const std::byte>();
}

Status ZmqHostPort::Send(std::span<const std::byte> frame) {
  // kPeerGone (ROUTER_MANDATORY): the peer left; kPeerBacklog: it stopped reading.
  return net::SendToPeer(socket_, peer_, frame, envelope_) == net::SendOutcome::kSent
             ? OkStatus()
             : Unavailable();
}

}  // namespace wafer::sim

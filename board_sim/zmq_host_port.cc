#include "board_sim/zmq_host_port.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace wafer::sim {

Result<size_t> ZmqHostPort::Receive(std::span<std::byte> buffer, int64_t deadline_ns) {
  try {
    for (;;) {
      const int64_t left_ms = std::max<int64_t>(0, (deadline_ns - clock_.NowNanos()) / 1000000);
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(left_ms)) == 0) {
        return DeadlineExceeded();
      }
      std::vector<zmq::message_t> parts;
      do {
        parts.emplace_back();
        if (!socket_.recv(parts.back(), zmq::recv_flags::dontwait)) return DeadlineExceeded();
      } while (parts.back().more());
      const bool plain = parts.size() == 2;
      const bool with_delimiter = parts.size() == 3 && parts[1].size() == 0;
      if (!plain && !with_delimiter) {
        ++malformed_envelopes_;  // No payload to answer: dropped and counted.
        continue;
      }
      peer_ = std::move(parts[0]);
      delimiter_ = with_delimiter;
      const zmq::message_t& payload = parts.back();
      std::memcpy(buffer.data(), payload.data(), std::min(buffer.size(), payload.size()));
      return payload.size();
    }
  } catch (const zmq::error_t&) {
    return Unavailable();
  }
}

Status ZmqHostPort::Send(std::span<const std::byte> frame) {
  try {
    zmq::message_t peer;
    peer.copy(peer_);
    if (!socket_.send(std::move(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      return Unavailable();
    }
    if (delimiter_) socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
    zmq::message_t payload(frame.data(), frame.size());
    if (!socket_.send(std::move(payload), zmq::send_flags::dontwait)) return Unavailable();
    return OkStatus();
  } catch (const zmq::error_t&) {
    return Unavailable();  // EHOSTUNREACH with ROUTER_MANDATORY: the peer left.
  }
}

}  // namespace wafer::sim

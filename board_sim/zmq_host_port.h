// hal::HostPort over a ZeroMQ ROUTER socket: replies go to the peer whose frame was received last.
#pragma once

#include <cstdint>
#include <string>

#include <zmq.hpp>

#include "common/clock.h"
#include "firmware/hal/host_port.h"

namespace wafer::sim {

// Not thread-safe; the socket and this port belong to the board thread. zmq exceptions are
// caught here and become UNAVAILABLE.
class ZmqHostPort final : public fw::hal::HostPort {
 public:
  // `socket` (a bound ROUTER) and `clock` outlive this.
  ZmqHostPort(zmq::socket_t& socket, const Clock& clock) : socket_(socket), clock_(clock) {}

  Result<size_t> Receive(std::span<std::byte> buffer, int64_t deadline_ns) override;
  Status Send(std::span<const std::byte> frame) override;

  // Multipart messages that were not [identity, payload] (or [identity, "", payload]).
  uint64_t malformed_envelopes() const { return malformed_envelopes_; }

 private:
  zmq::socket_t& socket_;
  const Clock& clock_;
  zmq::message_t peer_;
  bool delimiter_ = false;
  uint64_t malformed_envelopes_ = 0;
};

}  // namespace wafer::sim

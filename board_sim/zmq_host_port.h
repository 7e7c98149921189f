// hal::HostPort over a ZeroMQ ROUTER socket: replies go to the peer whose frame was received last,
// framed as that peer framed its request (DEALER or REQ). All socket work goes through common/net.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/net/router.h"
#include "common/net/socket.h"
#include "firmware/hal/host_port.h"

namespace wafer::sim {

// Not thread-safe; the socket and this port belong to the board thread.
class ZmqHostPort final : public fw::hal::HostPort {
 public:
  // `socket` (a bound ROUTER) and `clock` outlive this.
  ZmqHostPort(net::Socket& socket, const Clock& clock) : socket_(socket), clock_(clock) {}

  Result<size_t> Receive(std::span<std::byte> buffer, int64_t deadline_ns) override;
  Status Send(std::span<const std::byte> frame) override;
  // The last message's attachment (a WriteWeights chunk), as libzmq received it: the sender's
  // own memory over inproc://, libzmq's receive buffer over ipc:// and tcp://.
  std::span<const std::byte> attachment() const override;

  // Multipart messages that were not [identity, payload] (or [identity, "", payload]).
  uint64_t malformed_envelopes() const { return malformed_envelopes_; }

 private:
  net::Socket& socket_;
  const Clock& clock_;
  std::string peer_;
  net::Envelope envelope_ = net::Envelope::kDealer;
  // The message Receive returned last, kept while the firmware reads its attachment.
  std::optional<net::PeerMessage> last_;
  uint64_t malformed_envelopes_ = 0;
};

}  // namespace wafer::sim

// hal::StageLink over ZeroMQ: a DEALER per next-stage board, connected to that board's link
// endpoint (its ROUTER serves Steps from the previous stage as from the host). All socket work
// goes through common/net.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "common/net/socket.h"
#include "firmware/hal/stage_link.h"

namespace wafer::sim {

// Not thread-safe; the sockets and this link belong to the board thread.
class ZmqStageLink final : public fw::hal::StageLink {
 public:
  // `context` (the one the next boards' inproc endpoints live in) outlives this.
  explicit ZmqStageLink(zmq::context_t& context) : context_(context) {}

  Result<uint32_t> Open(std::span<const char> endpoint) override;
  Status Send(uint32_t link, std::span<const std::byte> frame) override;
  Result<size_t> Receive(uint32_t link, std::span<std::byte> buffer,
                         uint32_t timeout_ms) override;

 private:
  static constexpr size_t kMaxLinks = 8;
  struct Link {
    std::string endpoint;
    std::unique_ptr<net::Socket> socket;
  };

  zmq::context_t& context_;
  std::array<Link, kMaxLinks> links_;
};

}  // namespace wafer::sim

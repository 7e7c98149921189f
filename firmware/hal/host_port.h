// The firmware's host link: frames in, frames out. The board runner implements it over a
// ZeroMQ ROUTER; tests implement it with queues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/result.h"

namespace wafer::fw::hal {

// Not thread-safe; driven only by the firmware's superloop.
class HostPort {
 public:
  virtual ~HostPort() = default;

  // Waits until `deadline_ns` (the firmware Clock's time) for one frame and copies up to
  // `buffer.size()` bytes of it into `buffer`.
  // Returns:
  //   the frame's full size  - may exceed buffer.size(): the frame was truncated.
  //   DEADLINE_EXCEEDED      - nothing arrived in time.
  //   UNAVAILABLE            - the port is broken or shut down.
  virtual Result<size_t> Receive(std::span<std::byte> buffer, int64_t deadline_ns) = 0;

  // The bulk bytes that came with the frame Receive returned last (the second part of its
  // message: a WriteWeights chunk the host sent beside its header), handed over where they
  // arrived instead of copied into the receive buffer; empty when the frame came alone. Valid
  // until the next Receive. A port that never receives attachments keeps this default.
  virtual std::span<const std::byte> attachment() const { return {}; }

  // Sends a frame to the peer that sent the last received frame.
  // Returns OK or UNAVAILABLE (the peer is gone or the port would block).
  virtual Status Send(std::span<const std::byte> frame) = 0;
};

}  // namespace wafer::fw::hal

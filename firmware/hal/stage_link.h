// The board's inter-wafer links: to the next stage of a model pipelined over boards, frames out
// and that board's answers back. The board runner implements it over ZeroMQ (a client of the
// next board's link endpoint); tests implement it with queues.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/result.h"

namespace wafer::fw::hal {

// Not thread-safe; driven only by the firmware's superloop.
class StageLink {
 public:
  virtual ~StageLink() = default;

  // The link to the board serving `endpoint` (board.fbs NextStage.endpoint), connected on first
  // use and kept: the same endpoint gives the same handle.
  // Returns:
  //   a handle          - for Send and Receive.
  //   INVALID_ARGUMENT  - the endpoint is not one this board can reach.
  //   RESOURCE_EXHAUSTED - every link is in use.
  virtual Result<uint32_t> Open(std::span<const char> endpoint) = 0;

  // Sends one frame to the board of `link`. OK or UNAVAILABLE (the link is down or full).
  virtual Status Send(uint32_t link, std::span<const std::byte> frame) = 0;

  // Waits up to `timeout_ms` for the next frame the board of `link` answered, and copies up to
  // `buffer.size()` bytes of it into `buffer`.
  // Returns the frame's full size (may exceed buffer.size(): truncated), DEADLINE_EXCEEDED or
  // UNAVAILABLE.
  virtual Result<size_t> Receive(uint32_t link, std::span<std::byte> buffer,
                                 uint32_t timeout_ms) = 0;
};

}  // namespace wafer::fw::hal

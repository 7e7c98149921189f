// One frame DMA channel of the board controller (board_map.h, namespace channel): the host link
// and each inter-wafer link are one. Frames are copied between the channel's SDRAM windows and
// the caller's buffers; an attachment stays in its RX slot until the next receive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/clock.h"
#include "common/result.h"
#include "firmware/bare_metal/register_bus.h"

namespace wafer::fw::board {

// Not thread-safe; driven only by the superloop.
class FrameChannel {
 public:
  // The channel's register block and its windows (board_map.h); the windows are the
  // channel's alone. `clock` outlives this.
  FrameChannel(uintptr_t registers, uintptr_t rx_window, size_t rx_slots, size_t rx_slot_bytes,
               uintptr_t tx_window, size_t tx_bytes, const Clock& clock);

  // Points the channel's DMA at its windows. Called once, before any other call.
  void Init();

  // Takes the next frame, waiting until `deadline_ns` (clock time). Hands the previous frame's
  // slot back to the channel first, which ends the previous attachment.
  // Returns:
  //   the frame's full size - copied up to buffer.size() bytes (larger: truncated).
  //   DEADLINE_EXCEEDED     - no frame arrived in time.
  //   UNAVAILABLE           - the link is down, or the channel reported a slot it does not have.
  Result<size_t> Receive(std::span<std::byte> buffer, int64_t deadline_ns);

  // The attachment of the frame Receive returned last (empty if it came alone).
  std::span<const std::byte> attachment() const { return attachment_; }

  // Sends one frame and waits until it is on the wire, at most `timeout_ns`.
  // Returns OK, or UNAVAILABLE (link down, frame larger than the TX window, not delivered in
  // time or refused by the link).
  Status Send(std::span<const std::byte> frame, int64_t timeout_ns);

 private:
  void Release();

  RegisterBus regs_;
  uintptr_t rx_window_;
  size_t rx_slots_;
  size_t rx_slot_bytes_;
  uintptr_t tx_window_;
  size_t tx_bytes_;
  const Clock& clock_;
  bool holding_ = false;  // A received slot not yet handed back.
  uint32_t held_slot_ = 0;
  std::span<const std::byte> attachment_;
};

}  // namespace wafer::fw::board

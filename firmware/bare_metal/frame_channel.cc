#include "firmware/bare_metal/frame_channel.h"

#include <algorithm>
#include <cstring>

#include "firmware/bare_metal/board_map.h"

namespace wafer::fw::board {

FrameChannel::FrameChannel(uintptr_t registers, uintptr_t rx_window, size_t rx_slots,
                           size_t rx_slot_bytes, uintptr_t tx_window, size_t tx_bytes,
                           const Clock& clock)
    : regs_(registers),
      rx_window_(rx_window),
      rx_slots_(rx_slots),
      rx_slot_bytes_(rx_slot_bytes),
      tx_window_(tx_window),
      tx_bytes_(tx_bytes),
      clock_(clock) {}

void FrameChannel::Init() {
  regs_.Write<channel::kRxWindow>(static_cast<uint32_t>(rx_window_));
  regs_.Write<channel::kTxWindow>(static_cast<uint32_t>(tx_window_));
}

void FrameChannel::Release() {
  if (!holding_) return;
  MemoryBarrier();  // Done reading the slot before the channel may overwrite it.
  regs_.Write<channel::kRxRelease>(held_slot_);
  holding_ = false;
  attachment_ = {};
}

Result<size_t> FrameChannel::Receive(std::span<std::byte> buffer, int64_t deadline_ns) {
  Release();
  for (;;) {
    const uint32_t status = regs_.Read<channel::kStatus>();
    if ((status & channel::kStatusLinkUp) == 0) return Unavailable();
    if ((status & channel::kStatusRxReady) != 0) break;
    if (clock_.NowNanos() >= deadline_ns) return DeadlineExceeded();
  }
  const uint32_t slot = regs_.Read<channel::kRxSlot>();
  const size_t length = regs_.Read<channel::kRxLength>();
  const size_t attach_offset = regs_.Read<channel::kRxAttachOffset>();
  const size_t attach_length = regs_.Read<channel::kRxAttachLength>();
  MemoryBarrier();  // The slot's bytes are read after the registers that announced them.
  held_slot_ = slot;
  holding_ = true;
  // A slot, frame or attachment outside the window is a channel fault: never read past it.
  if (slot >= rx_slots_ || length > rx_slot_bytes_ ||
      (attach_length > 0 && (attach_offset < length || attach_offset > rx_slot_bytes_ ||
                             attach_length > rx_slot_bytes_ - attach_offset))) {
    Release();
    return Unavailable();
  }
  const auto* base = reinterpret_cast<const std::byte*>(rx_window_ + slot * rx_slot_bytes_);
  std::memcpy(buffer.data(), base, std::min(buffer.size(), length));
  if (attach_length > 0) attachment_ = {base + attach_offset, attach_length};
  return length;
}

Status FrameChannel::Send(std::span<const std::byte> frame, int64_t timeout_ns) {
  if (frame.size() > tx_bytes_) return Unavailable();
  if ((regs_.Read<channel::kStatus>() & channel::kStatusLinkUp) == 0) return Unavailable();
  const int64_t deadline = clock_.NowNanos() + timeout_ns;
  // The previous frame may still be leaving the window.
  while ((regs_.Read<channel::kStatus>() & channel::kStatusTxBusy) != 0) {
    if (clock_.NowNanos() >= deadline) return Unavailable();
  }
  std::memcpy(reinterpret_cast<void*>(tx_window_), frame.data(), frame.size());
  MemoryBarrier();  // The frame is in SDRAM before the channel is told to send it.
  regs_.Write<channel::kTxLength>(static_cast<uint32_t>(frame.size()));
  regs_.Write<channel::kTxDoorbell>(1);
  for (;;) {
    const uint32_t status = regs_.Read<channel::kStatus>();
    if ((status & channel::kStatusTxBusy) == 0) {
      return (status & channel::kStatusTxError) != 0 ? Unavailable() : OkStatus();
    }
    if (clock_.NowNanos() >= deadline) return Unavailable();
  }
}

}  // namespace wafer::fw::board

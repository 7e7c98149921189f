// The firmware's host link on the board controller: the host-link frame channel.
#pragma once

#include "firmware/bare_metal/frame_channel.h"
#include "firmware/hal/host_port.h"

namespace wafer::fw::board {

// Not thread-safe; driven only by the superloop.
class BoardHostPort final : public hal::HostPort {
 public:
  // `clock` outlives this.
  explicit BoardHostPort(const Clock& clock);

  // Points the channel at its windows. Called once at init.
  void Init() { channel_.Init(); }

  Result<size_t> Receive(std::span<std::byte> buffer, int64_t deadline_ns) override;
  std::span<const std::byte> attachment() const override { return channel_.attachment(); }
  // Waits at most kSendTimeoutNs for the frame to leave.
  Status Send(std::span<const std::byte> frame) override;

  static constexpr int64_t kSendTimeoutNs = 10'000'000;

 private:
  FrameChannel channel_;
};

}  // namespace wafer::fw::board

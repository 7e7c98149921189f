// The board's inter-wafer links (firmware/hal/stage_link.h) on the board controller: one frame
// channel per link. A next stage's endpoint names the link its board sits on: "ilink:0" or
// "ilink:1" (board_map.h kStageChannels); the host configures NextStage.endpoint accordingly.
#pragma once

#include <array>

#include "firmware/bare_metal/board_map.h"
#include "firmware/bare_metal/frame_channel.h"
#include "firmware/hal/stage_link.h"

namespace wafer::fw::board {

// Not thread-safe; driven only by the superloop.
class BoardStageLink final : public hal::StageLink {
 public:
  // `clock` outlives this.
  explicit BoardStageLink(const Clock& clock);

  // Points every channel at its windows. Called once at init.
  void Init();

  // INVALID_ARGUMENT for an endpoint that is not "ilink:<n>" with n < kStageChannels.
  Result<uint32_t> Open(std::span<const char> endpoint) override;
  Status Send(uint32_t link, std::span<const std::byte> frame) override;
  Result<size_t> Receive(uint32_t link, std::span<std::byte> buffer,
                         uint32_t timeout_ms) override;

  static constexpr int64_t kSendTimeoutNs = 10'000'000;

 private:
  static FrameChannel Channel(size_t n, const Clock& clock);

  const Clock& clock_;
  std::array<FrameChannel, kStageChannels> channels_;
};

}  // namespace wafer::fw::board

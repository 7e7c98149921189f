#include "firmware/bare_metal/board_stage_link.h"

#include <cstring>

namespace wafer::fw::board {
namespace {

constexpr char kPrefix[] = "ilink:";
constexpr size_t kPrefixLength = sizeof(kPrefix) - 1;

}  // namespace

// Channel n: its registers, then 2 MiB of RX window (one slot) and 2 MiB of TX window.
FrameChannel BoardStageLink::Channel(size_t n, const Clock& clock) {
  const uintptr_t window = kStageWindow + n * 2 * kStageWindowBytes;
  return FrameChannel(kStageLinkBase + n * kStageLinkStride, window, 1, kStageWindowBytes,
                      window + kStageWindowBytes, kStageWindowBytes, clock);
}

BoardStageLink::BoardStageLink(const Clock& clock)
    : clock_(clock), channels_{Channel(0, clock), Channel(1, clock)} {
  static_assert(kStageChannels == 2, "one initializer per channel");
}

void BoardStageLink::Init() {
  for (FrameChannel& c : channels_) c.Init();
}

Result<uint32_t> BoardStageLink::Open(std::span<const char> endpoint) {
  if (endpoint.size() != kPrefixLength + 1 ||
      std::memcmp(endpoint.data(), kPrefix, kPrefixLength) != 0) {
    return InvalidArgument();
  }
  const char digit = endpoint[kPrefixLength];
  if (digit < '0' || static_cast<size_t>(digit - '0') >= kStageChannels) {
    return InvalidArgument();
  }
  return static_cast<uint32_t>(digit - '0');
}

Status BoardStageLink::Send(uint32_t link, std::span<const std::byte> frame) {
  if (link >= channels_.size()) return Unavailable();
  return channels_[link].Send(frame, kSendTimeoutNs);
}

Result<size_t> BoardStageLink::Receive(uint32_t link, std::span<std::byte> buffer,
                                       uint32_t timeout_ms) {
  if (link >= channels_.size()) return Unavailable();
  return channels_[link].Receive(buffer,
                                 clock_.NowNanos() + int64_t{timeout_ms} * 1'000'000);
}

}  // namespace wafer::fw::board

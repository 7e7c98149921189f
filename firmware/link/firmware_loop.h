// The firmware superloop: receive a frame -> decode -> command processor -> encode -> send.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "firmware/command.h"
#include "firmware/command_processor.h"
#include "firmware/hal/host_port.h"
#include "firmware/hal/wafer.h"
#include "firmware/link/frame_codec.h"
#include "firmware/platform.h"

namespace wafer::fw {

struct LoopStats {
  uint64_t frames_received = 0;
  uint64_t frames_rejected = 0;   // Failed size, identifier, verifier, version or bounds checks.
  uint64_t replies_sent = 0;
  uint64_t replies_dropped = 0;   // The port could not send (peer gone, would block).
  uint64_t frames_crc_failed = 0;  // Failed the link CRC (answered with kDataLoss, not decoded).
  uint64_t frames_ignored_while_hung = 0;  // Dropped unanswered by a hung firmware.
};

// Not thread-safe: one thread runs PollOnce in a loop. About 2.6 MB of fixed buffers (1.5 MB to
// receive a frame, 1 MB for a step's hidden states) plus the ~1.2 MB reply buffer reserved on
// first use: allocate it once at init (make_unique) and never again.
class FirmwareLoop {
 public:
  // `port` and every device of `platform` outlive this.
  FirmwareLoop(hal::HostPort& port, const Platform& platform)
      : port_(port), processor_(platform) {}

  // Serves at most one frame, waiting for it until `deadline_ns`.
  // Returns OK (a frame was served, or none arrived in time) or UNAVAILABLE (the port failed).
  Status PollOnce(int64_t deadline_ns);

  const LoopStats& stats() const { return stats_; }
  BootState state() const { return processor_.state(); }
  CommandProcessor& processor() { return processor_; }
  const CommandProcessor& processor() const { return processor_; }

 private:
  hal::HostPort& port_;
  CommandProcessor processor_;
  FrameCodec codec_;
  alignas(16) std::array<std::byte, kMaxFrameBytes> rx_{};
  Command cmd_;
  Reply reply_;
  LoopStats stats_;
};

}  // namespace wafer::fw

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
#include "firmware/hal/stage_link.h"
#include "firmware/link/frame_codec.h"
#include "firmware/link/stage_pipeline.h"
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

// Not thread-safe: one thread runs PollOnce in a loop. About 8 MB of fixed buffers (1.5 MB to
// receive a frame, 1.5 MB of reply arena, 1 MB for a step's hidden states, 3 MB to hand Steps to
// a next stage and receive its answers): allocate it once at init (make_unique, or static
// storage on the board) and never again. PollOnce allocates nothing.
class FirmwareLoop {
 public:
  // `port`, every device of `platform` and `stage_link` outlive this. Without a stage link
  // (nullptr) a Step of a model with a next stage fails that stage (see StagePipeline).
  FirmwareLoop(hal::HostPort& port, const Platform& platform,
               hal::StageLink* stage_link = nullptr)
      : port_(port), processor_(platform), pipeline_(processor_, stage_link) {}

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
  StagePipeline pipeline_;  // Steps of models pipelined over boards.
  CommandProcessor::NextStageInfo next_stage_;
  FrameCodec codec_;
  alignas(16) std::array<std::byte, kMaxFrameBytes> rx_{};
  Command cmd_;
  Reply reply_;
  LoopStats stats_;
};

}  // namespace wafer::fw

#include "firmware/link/firmware_loop.h"

namespace wafer::fw {

Status FirmwareLoop::PollOnce(int64_t deadline_ns) {
  Result<size_t> got = port_.Receive(rx_, deadline_ns);
  if (!got.ok()) {
    if (got.status().code() != StatusCode::kDeadlineExceeded) return got.status();
    processor_.Poll();  // Idle: the health checks still run.
    return OkStatus();
  }
  ++stats_.frames_received;
  if (processor_.hung()) {
    // A hung firmware answers nothing. Only the board's reset line still works: a Reset command
    // stands in for it (the board management controller pulls the line).
    if (*got > rx_.size() ||
        !codec_.Decode(std::span<const std::byte>(rx_.data(), *got), port_.attachment(), cmd_,
                       reply_) ||
        cmd_.kind != CommandKind::kReset) {
      ++stats_.frames_ignored_while_hung;
      return OkStatus();
    }
  }
  bool decoded = false;
  if (processor_.FrameFailedCrc()) {
    ++stats_.frames_crc_failed;
    reply_ = Reply{};
    reply_.kind = ReplyKind::kError;
    reply_.link_error = LinkError::kFrameCrc;
    reply_.detail = "DATA_LOSS: frame failed the link CRC; not processed, retry it";
  } else if (*got > rx_.size()) {
    reply_ = Reply{};
    reply_.kind = ReplyKind::kError;
    reply_.link_error = LinkError::kMalformedMessage;
    reply_.detail = "frame larger than the firmware's receive buffer";
  } else {
    decoded = codec_.Decode(std::span<const std::byte>(rx_.data(), *got), port_.attachment(),
                            cmd_, reply_);
  }
  if (decoded && cmd_.kind == CommandKind::kStep &&
      processor_.NextStageOf(cmd_.step.model_id, next_stage_)) {
    pipeline_.Run(cmd_, next_stage_, reply_);
  } else if (decoded) {
    processor_.Handle(cmd_, reply_);
  } else {
    ++stats_.frames_rejected;
  }
  if (port_.Send(codec_.Encode(reply_)).ok()) {
    ++stats_.replies_sent;
  } else {
    ++stats_.replies_dropped;
  }
  return OkStatus();
}

}  // namespace wafer::fw

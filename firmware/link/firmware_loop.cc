#include "firmware/link/firmware_loop.h"

namespace wafer::fw {

Status FirmwareLoop::PollOnce(int64_t deadline_ns) {
  Result<size_t> got = port_.Receive(rx_, deadline_ns);
  if (!got.ok()) {
    return got.status().code() == StatusCode::kDeadlineExceeded ? OkStatus() : got.status();
  }
  ++stats_.frames_received;
  bool decoded = false;
  if (*got > rx_.size()) {
    reply_ = Reply{};
    reply_.kind = ReplyKind::kError;
    reply_.link_error = LinkError::kMalformedMessage;
    reply_.detail = "frame larger than the firmware's receive buffer";
  } else {
    decoded = codec_.Decode(std::span<const std::byte>(rx_.data(), *got), cmd_, reply_);
  }
  if (decoded) {
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

#include "firmware/error_log.h"

namespace wafer::fw {

void ErrorLog::Append(Severity severity, LogCode code, std::initializer_list<uint64_t> args) {
  size_t at;
  if (size_ == ring_.size()) {
    at = head_;
    head_ = (head_ + 1) % ring_.size();
    ++overwritten_;
  } else {
    at = (head_ + size_) % ring_.size();
    ++size_;
  }
  LogRecord& r = ring_[at];
  r = LogRecord{};
  r.sequence = next_sequence_++;
  r.timestamp_ns = clock_.NowNanos();
  r.severity = severity;
  r.code = code;
  for (uint64_t a : args) {
    if (r.arg_count == kLogArgs) break;
    r.args[r.arg_count++] = a;
  }
}

LogReadResult ErrorLog::Read(uint64_t from_sequence, std::span<LogRecord> out) const {
  LogReadResult result;
  const uint64_t oldest = next_sequence_ - size_;  // Sequence of ring_[head_] when size_ > 0.
  if (from_sequence >= next_sequence_) {
    result.next_sequence = next_sequence_;
    return result;
  }
  uint64_t first = from_sequence;
  if (first < oldest) {
    // Sequence 0 means "from the oldest"; it is not a record that could have been dropped.
    const uint64_t wanted_from = first == 0 ? 1 : first;
    result.dropped = oldest > wanted_from ? oldest - wanted_from : 0;
    first = oldest;
  }
  const size_t skip = static_cast<size_t>(first - oldest);
  size_t n = size_ - skip;
  if (n > out.size()) n = out.size();
  for (size_t i = 0; i < n; ++i) out[i] = ring_[(head_ + skip + i) % ring_.size()];
  result.count = n;
  result.next_sequence = first + n;
  return result;
}

}  // namespace wafer::fw

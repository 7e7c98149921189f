// The bookkeeping of one resumable token stream: which chunk comes next, what is a duplicate or
// a gap, and whether a reply still comes from the job store that accepted the job. Private to
// host/client; JobClient::RunWithRetry drives the socket around it.
#pragma once

#include <cstdint>
#include <string>

#include "host/wire/messages.h"

namespace wafer::host::internal {

// What to do with one message that names the streamed job.
enum class StreamStep {
  kDeliver,          // The next chunk in order: hand it to the caller (next_seq() moved on).
  kDuplicate,        // A chunk already delivered (seq below next_seq()): drop it.
  kGap,              // A chunk past next_seq(), or a JobFinished counting chunks not yet
                     // delivered: drop it and resume from next_seq().
  kFinished,         // JobFinished, with every chunk delivered.
  kInstanceChanged,  // The reply comes from another job store than the one that accepted the
                     // job: the daemon lost it, and this is somebody else's job of the same id.
};

// Not thread-safe.
class StreamTracker {
 public:
  // `instance_id` is the JobAccepted's (0 when the daemon sent none).
  StreamTracker(uint64_t job_id, uint64_t instance_id) : job_id_(job_id), instance_(instance_id) {}

  // REQUIRES: `m` is a TokenChunk or JobFinished naming job_id().
  StreamStep Step(const JobMessage& m) {
    if (const uint64_t from = InstanceOf(m); from != 0 && from != instance_) {
      foreign_instance_ = from;
      return StreamStep::kInstanceChanged;
    }
    if (const auto* chunk = std::get_if<TokenChunk>(&m)) {
      if (chunk->seq < next_seq_) return StreamStep::kDuplicate;
      if (chunk->seq > next_seq_) return StreamStep::kGap;
      ++next_seq_;
      return StreamStep::kDeliver;
    }
    const auto& finished = std::get<JobFinished>(m);
    return finished.chunks > next_seq_ ? StreamStep::kGap : StreamStep::kFinished;
  }

  uint64_t job_id() const { return job_id_; }
  uint64_t instance_id() const { return instance_; }
  // The seq of the next chunk to deliver: how many were delivered.
  uint32_t next_seq() const { return next_seq_; }
  // The instance of the last kInstanceChanged reply.
  uint64_t foreign_instance() const { return foreign_instance_; }

 private:
  static uint64_t InstanceOf(const JobMessage& m) {
    if (const auto* c = std::get_if<TokenChunk>(&m)) return c->instance_id;
    if (const auto* f = std::get_if<JobFinished>(&m)) return f->instance_id;
    return 0;
  }

  const uint64_t job_id_;
  const uint64_t instance_;
  uint32_t next_seq_ = 0;
  uint64_t foreign_instance_ = 0;
};

}  // namespace wafer::host::internal

// The admin socket's jobs tail (waferctl jobs tail): follows a job's chunks for a client without
// taking the stream from the job's own client. Part of AdminFrontend (admin_frontend.h); runs on
// the step loop's thread like the rest of it. The chunks are read from the job's record, which
// keeps every chunk (tokens and text) for resumes, so a tail needs no hook in the step loop.
#include <cstddef>

#include "host/frontend/admin_frontend.h"

namespace wafer::host {
namespace {

constexpr int64_t kSignOfLifeNs = 1'000'000'000;
// At most this many chunks per tail per Pump(), so that a tail from the start of a long job
// does not hold up the loop; the rest follow on the next turns.
constexpr uint32_t kChunksPerPump = 256;

JobTokens TokensOf(const JobRecord& job, uint64_t tag) {
  JobTokens t;
  t.request_tag = tag;
  t.job_id = job.id;
  t.state = job.finished ? JobState::kFinished : job.state;
  t.tokens_generated = static_cast<uint32_t>(job.output.size());
  return t;
}

}  // namespace

void AdminFrontend::OnTailJob(const std::string& peer, const TailJob& tail) {
  JobRecord* job = jobs_.Find(tail.job_id);
  if (job == nullptr) {
    Send(peer, OperationResult{tail.request_tag, ErrorCode::kUnknownJob,
                               "job " + std::to_string(tail.job_id) +
                                   " is not known (never accepted, or finished and no longer "
                                   "retained)",
                               0});
    return;
  }
  if (tails_.size() >= kMaxJobTails) {
    Send(peer, OperationResult{tail.request_tag, ErrorCode::kResourceExhausted,
                               std::to_string(kMaxJobTails) +
                                   " tails are under way; try again when one ends",
                               0});
    return;
  }
  // The first message goes at once, so that the client sees the tail was taken.
  tails_.push_back(Tail{peer, tail.request_tag, tail.job_id, tail.from_seq, 0});
}

void AdminFrontend::PumpTails() {
  if (tails_.empty()) return;
  const int64_t now = clock_.NowNanos();
  auto done = [&](Tail& tail) -> bool {
    const JobRecord* job = jobs_.Find(tail.job_id);
    if (job == nullptr) {  // Forgotten while followed (retention): nothing more will come.
      Send(tail.peer, OperationResult{tail.tag, ErrorCode::kUnknownJob,
                                      "job " + std::to_string(tail.job_id) +
                                          " is no longer retained",
                                      0});
      return true;
    }
    const uint32_t chunks = static_cast<uint32_t>(job->chunk_starts.size());
    uint32_t sent = 0;
    while (tail.next_seq < chunks && sent < kChunksPerPump) {
      const uint32_t seq = tail.next_seq;
      const size_t begin = job->chunk_starts[seq];
      const size_t end = seq + 1 < chunks ? job->chunk_starts[seq + 1] : job->output.size();
      JobTokens t = TokensOf(*job, tail.tag);
      t.seq = seq;
      t.tokens.assign(job->output.begin() + static_cast<std::ptrdiff_t>(begin),
                      job->output.begin() + static_cast<std::ptrdiff_t>(end));
      if (seq < job->chunk_texts.size()) t.text = job->chunk_texts[seq];
      if (!Send(tail.peer, t)) return true;  // The client is gone or not keeping up.
      ++tail.next_seq;
      ++sent;
      tail.last_sent_ns = now;
    }
    if (tail.next_seq < chunks) return false;  // More next turn.
    if (job->finished) {
      JobTokens t = TokensOf(*job, tail.tag);
      t.seq = tail.next_seq;
      t.finished = true;
      t.finish_reason = FinishReasonName(job->finished->reason);
      Send(tail.peer, t);
      return true;
    }
    if (tail.last_sent_ns == 0 || now - tail.last_sent_ns >= kSignOfLifeNs) {
      JobTokens t = TokensOf(*job, tail.tag);
      t.seq = tail.next_seq;
      if (!Send(tail.peer, t)) return true;
      tail.last_sent_ns = now;
    }
    return false;
  };
  size_t kept = 0;
  for (size_t i = 0; i < tails_.size(); ++i) {
    if (done(tails_[i])) continue;
    if (kept != i) tails_[kept] = std::move(tails_[i]);
    ++kept;
  }
  tails_.resize(kept);
}

}  // namespace wafer::host

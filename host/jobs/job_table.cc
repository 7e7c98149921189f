#include "host/jobs/job_table.h"

#include <algorithm>

#include "common/log/log.h"
#include "host/jobs/in_memory_job_store.h"

namespace wafer::host {

JobTable::JobTable(JobStore& store, uint32_t finished_retention,
                   uint64_t finished_retention_bytes)
    : store_(store),
      finished_retention_(finished_retention),
      finished_retention_bytes_(finished_retention_bytes) {
  store_.ForEach([this](JobRecord& job) {
    next_accept_seq_ = std::max(next_accept_seq_, job.accept_seq + 1);
    if (!job.idempotency_key.empty()) by_key_[KeyOf(job.tenant, job.idempotency_key)] = job.id;
    if (job.finished) {
      Retain(job);
    } else if (job.deadline_unix_ms != 0) {
      deadlines_.emplace(job.deadline_unix_ms, job.id);
    }
  });
}

uint64_t JobTable::RetainedBytes(const JobRecord& job) {
  uint64_t bytes = sizeof(JobRecord) + job.model.size() + job.tenant.size() +
                   job.idempotency_key.size() + job.request_digest.size() +
                   job.output.size() * sizeof(uint32_t) +
                   job.chunk_starts.size() * sizeof(uint32_t) + job.text_pending.size();
  for (const std::string& text : job.chunk_texts) bytes += sizeof(std::string) + text.size();
  if (job.finished) bytes += job.finished->detail.size();
  return bytes;
}

void JobTable::Retain(const JobRecord& job) {
  // Older jobs make room first: `job` itself stays (even with a retention of 0) until the next
  // one finishes, so that the caller may still read it.
  const uint64_t bytes = RetainedBytes(job);
  while (!finished_order_.empty() &&
         (finished_order_.size() >= finished_retention_ ||
          retained_bytes_ + bytes > finished_retention_bytes_)) {
    Forget(finished_order_.front());
    finished_order_.pop_front();
  }
  finished_order_.push_back(job.id);
  retained_bytes_ += bytes;
}

std::string JobTable::KeyOf(const std::string& tenant, const std::string& key) {
  return std::to_string(tenant.size()) + ':' + tenant + key;
}

JobRecord* JobTable::FindByKey(const std::string& tenant, const std::string& key) {
  auto it = by_key_.find(KeyOf(tenant, key));
  return it == by_key_.end() ? nullptr : store_.Find(it->second);
}

Result<JobRecord*> JobTable::Add(std::unique_ptr<JobRecord> job) {
  do {
    job->id = RandomNonZeroId();
  } while (store_.Find(job->id) != nullptr);
  job->accept_seq = next_accept_seq_;
  JobRecord* record = job.get();
  WAFER_RETURN_IF_ERROR(store_.Insert(std::move(job)));
  ++next_accept_seq_;
  if (!record->idempotency_key.empty()) {
    by_key_[KeyOf(record->tenant, record->idempotency_key)] = record->id;
  }
  if (record->deadline_unix_ms != 0) deadlines_.emplace(record->deadline_unix_ms, record->id);
  return record;
}

void JobTable::MarkRunning(JobRecord& job, uint32_t slot) {
  job.state = JobState::kRunning;
  job.slot = slot;
}

void JobTable::MarkRequeued(JobRecord& job) {
  job.state = JobState::kQueued;
  job.slot = -1;
  job.in_flight = false;
  job.step_serial = 0;  // A step still under way for it is void when it returns.
  job.prefill = job.prompt;
  job.prefill.insert(job.prefill.end(), job.output.begin(), job.output.end());
  job.prefill_fed = 0;
}

void JobTable::RequestCancel(JobRecord& job, FinishReason reason) {
  job.cancel_requested = true;
  job.cancel_reason = reason;
  if (Status s = store_.CancelRequested(job); !s.ok()) {
    log::Error("jobs", "job store did not record the cancel of job {}: {}", job.id,
               StatusCodeName(s.code()));
  }
}

Status JobTable::AppendChunk(JobRecord& job, std::span<const uint32_t> tokens,
                             const std::string& text) {
  job.chunk_starts.push_back(static_cast<uint32_t>(job.output.size()));
  job.chunk_texts.push_back(text);
  job.output.insert(job.output.end(), tokens.begin(), tokens.end());
  tokens_streamed_ += tokens.size();
  auto counter = tokens_by_tenant_.find(job.tenant);
  if (counter == tokens_by_tenant_.end()) {
    const bool room = tokens_by_tenant_.size() < kMaxTenantCounters;
    counter = tokens_by_tenant_.try_emplace(room ? job.tenant : kOtherTenants, 0).first;
  }
  counter->second += tokens.size();
  return store_.ChunkAppended(job, job.chunk_starts.size() - 1);
}

const JobFinished& JobTable::Finish(JobRecord& job, FinishReason reason, ErrorCode error,
                                    std::string detail, int64_t now_ns) {
  JobFinished f;
  f.job_id = job.id;
  f.reason = reason;
  f.prompt_tokens = static_cast<uint32_t>(job.prompt.size());
  f.completion_tokens = static_cast<uint32_t>(job.output.size());
  f.timings.queued_ns = (job.first_step_ns != 0 ? job.first_step_ns : now_ns) - job.accepted_ns;
  f.timings.ttft_ns = job.first_token_ns != 0 ? job.first_token_ns - job.accepted_ns : 0;
  f.timings.total_ns = now_ns - job.accepted_ns;
  f.timings.device_ns = job.device_ns;
  f.chunks = static_cast<uint32_t>(job.chunk_starts.size());
  f.error_code = error;
  f.detail = std::move(detail);
  job.finished = std::move(f);
  job.state = JobState::kFinished;
  job.slot = -1;
  job.in_flight = false;
  // A resume needs the output and the ending, not the request.
  std::vector<uint32_t>().swap(job.prompt);
  std::vector<uint32_t>().swap(job.stop_tokens);
  std::vector<uint32_t>().swap(job.prefill);
  ++finished_count_;
  if (Status s = store_.Finished(job); !s.ok()) {
    log::Error("jobs", "job store did not record the end of job {}: {}", job.id,
               StatusCodeName(s.code()));
  }
  Retain(job);
  return job.finished.value();
}

void JobTable::Forget(uint64_t id) {
  JobRecord* job = store_.Find(id);
  if (job == nullptr) return;
  retained_bytes_ -= std::min(retained_bytes_, RetainedBytes(*job));
  if (!job->idempotency_key.empty()) {
    auto it = by_key_.find(KeyOf(job->tenant, job->idempotency_key));
    if (it != by_key_.end() && it->second == id) by_key_.erase(it);
  }
  store_.Erase(id).IgnoreError();  // Found just above.
}

void JobTable::TakeExpired(int64_t now_unix_ms, std::vector<uint64_t>* out) {
  // Only jobs that carry a deadline are indexed, soonest first: the common case costs nothing.
  // Compared unsigned: a deadline at or past 2^63 ms is far in the future, not negative.
  const uint64_t now = static_cast<uint64_t>(std::max<int64_t>(0, now_unix_ms));
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    auto [deadline, id] = *deadlines_.begin();
    JobRecord* job = store_.Find(id);
    if (job != nullptr && !job->finished && job->in_flight) return;  // Its step returns soon.
    deadlines_.erase(deadlines_.begin());
    if (job != nullptr && !job->finished) out->push_back(id);
  }
}

void JobTable::ForEachUnfinished(const std::function<void(JobRecord&)>& fn) {
  store_.ForEach([&](JobRecord& job) {
    if (!job.finished) fn(job);
  });
}

}  // namespace wafer::host

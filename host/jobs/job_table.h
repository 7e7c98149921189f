// Every job waferd knows (queued, running, finished and retained) with the indexes that find
// them: idempotency keys, deadlines, the order finished jobs are forgotten in, and id
// allocation (random 64-bit ids, never 0). Every change of a job's life (accepted, running, re-queued, a chunk streamed,
// finished, forgotten) goes through this class, which writes it through its JobStore.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "host/jobs/job_store.h"

namespace wafer::host {

// Not thread-safe; owned by the step loop's thread.
class JobTable {
 public:
  // Rebuilds the indexes from whatever `store` already holds (a restart: acceptance order
  // continues after the last). Finished jobs are kept while there are at most
  // `finished_retention` of them holding at most `finished_retention_bytes` (what a resume
  // needs: output, chunk texts, the key). REQUIRES: `store` outlives the table.
  JobTable(JobStore& store, uint32_t finished_retention, uint64_t finished_retention_bytes);

  JobRecord* Find(uint64_t id) { return store_.Find(id); }
  // The job (unfinished, or finished and retained) submitted by `tenant` with `key`, or nullptr.
  JobRecord* FindByKey(const std::string& tenant, const std::string& key);

  // Assigns `job` a random id and the next acceptance number, indexes its key and deadline and
  // hands it to the store. Returns the record, or the store's refusal (RESOURCE_EXHAUSTED,
  // UNAVAILABLE; nothing is indexed then).
  [[nodiscard]] Result<JobRecord*> Add(std::unique_ptr<JobRecord> job);

  // The scheduler granted `job` KV-cache slot `slot`.
  void MarkRunning(JobRecord& job, uint32_t slot);
  // `job` lost its slot (its board went away) and waits in the queue again: the prompt plus the
  // output so far becomes its prefill, so decoding resumes where it stopped.
  void MarkRequeued(JobRecord& job);
  // `job` ends with `reason` when the Step it is in returns (a cancel, an abandonment); the
  // store keeps the request, so a restart in between ends it instead of running it again.
  void RequestCancel(JobRecord& job, FinishReason reason);
  // The slot was released (the job is about to finish or be re-queued).
  void ClearSlot(JobRecord& job) { job.slot = -1; }

  // Appends `tokens` (decoded as `text`) as `job`'s next chunk. Returns the store's status (the
  // chunk is in the record either way).
  [[nodiscard]] Status AppendChunk(JobRecord& job, std::span<const uint32_t> tokens,
                                   const std::string& text);

  // Ends `job` at `now_ns` with its usage and timings, and lets go of what a resume does not
  // need (prompt, stop tokens, prefill). Finished jobs beyond the retention limits are
  // forgotten, oldest first; `job` itself is kept at least until the next one finishes.
  // REQUIRES: !job.finished. The slot is already released.
  // Returns the ending as recorded in job.finished.
  const JobFinished& Finish(JobRecord& job, FinishReason reason, ErrorCode error,
                            std::string detail, int64_t now_ns);

  // Appends to `out` the unfinished jobs whose deadline is at or before `now_unix_ms` and that
  // are not part of a step under way, and takes them out of the deadline index. A job in
  // flight is looked at again on the next call.
  void TakeExpired(int64_t now_unix_ms, std::vector<uint64_t>* out);

  // Calls `fn` for every unfinished job, in increasing id order.
  void ForEachUnfinished(const std::function<void(JobRecord&)>& fn);

  uint64_t finished_count() const { return finished_count_; }
  uint64_t retained_bytes() const { return retained_bytes_; }
  uint64_t tokens_streamed() const { return tokens_streamed_; }
  // Tokens streamed per tenant since the table was made (waferctl top). The first
  // kMaxTenantCounters tenants seen have their own count; later ones are counted together
  // under kOtherTenants, so a client inventing tenant names cannot grow this without bound.
  static constexpr size_t kMaxTenantCounters = 1024;
  static constexpr const char* kOtherTenants = "(other)";
  const std::map<std::string, uint64_t>& tokens_by_tenant() const { return tokens_by_tenant_; }
  size_t size() const { return store_.size(); }

 private:
  // Tenant and key length-prefixed, so that no two (tenant, key) pairs share an index key.
  static std::string KeyOf(const std::string& tenant, const std::string& key);
  // What a finished job keeps in memory, for the bytes limit.
  static uint64_t RetainedBytes(const JobRecord& job);
  void Retain(const JobRecord& job);
  void Forget(uint64_t id);

  JobStore& store_;
  const uint32_t finished_retention_;
  const uint64_t finished_retention_bytes_;
  uint64_t next_accept_seq_ = 1;
  uint64_t retained_bytes_ = 0;
  std::unordered_map<std::string, uint64_t> by_key_;
  std::multimap<uint64_t, uint64_t> deadlines_;  // deadline_unix_ms -> id, unfinished jobs.
  std::deque<uint64_t> finished_order_;
  uint64_t finished_count_ = 0;
  uint64_t tokens_streamed_ = 0;
  std::map<std::string, uint64_t> tokens_by_tenant_;
};

}  // namespace wafer::host

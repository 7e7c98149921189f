// The seam where job state is kept: JobTable puts every accepted job into a JobStore and tells
// it of every chunk streamed and every ending, in that order per job. The in-memory store holds
// the records themselves for the process's life; a durable store (SQLite) plugs in here and
// nowhere else, writing what each call names before it returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "common/status.h"
#include "host/jobs/job_record.h"

namespace wafer::host {

// Not thread-safe; owned by the step loop's thread, like the JobTable that uses it.
class JobStore {
 public:
  virtual ~JobStore() = default;

  // Takes a job just accepted (its id assigned), before the client is told so.
  // Returns:
  //   OK             - held; the job may be acknowledged.
  //   ALREADY_EXISTS - a job with this id is held already; nothing changed.
  //   UNAVAILABLE    - the store cannot take writes; the job must be rejected.
  [[nodiscard]] virtual Status Insert(std::unique_ptr<JobRecord> job) = 0;

  // The record of job `id`, or nullptr. The pointer stays valid until Erase(id).
  virtual JobRecord* Find(uint64_t id) = 0;

  // `job`'s chunk `chunk_index` (already in the record) was streamed: a durable store writes it.
  // NOT_FOUND when the store does not hold `job`.
  [[nodiscard]] virtual Status ChunkAppended(const JobRecord& job, size_t chunk_index) = 0;

  // `job` ended (job.finished is set). NOT_FOUND when the store does not hold `job`.
  [[nodiscard]] virtual Status Finished(const JobRecord& job) = 0;

  // Drops a job (a finished one past retention). NOT_FOUND when it is not held.
  [[nodiscard]] virtual Status Erase(uint64_t id) = 0;

  // Calls `fn` for every job held, in increasing id order.
  virtual void ForEach(const std::function<void(JobRecord&)>& fn) = 0;
  virtual size_t size() const = 0;
};

}  // namespace wafer::host

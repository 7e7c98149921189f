// The seam where job state is kept: JobTable puts every accepted job into a JobStore and tells
// it of every chunk streamed and every ending, in that order per job. The in-memory store holds
// the records themselves for the process's life; the durable store (SqliteJobStore) also writes
// each change to disk. Writes are grouped: Commit() ends a group (generation written()), and
// the group is durable once durable() reaches its generation. The job socket holds every reply
// that depends on a write (JobAccepted, TokenChunk, JobFinished, CancelResult) until then, so a
// client is never told of anything a crash could take back.
//
// The store also keeps the model loads that jobs wait for, so that a restart loads them again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "host/jobs/job_record.h"

namespace wafer::host {

// A model load to repeat after a restart (config loads are repeated from the config).
struct StoredModelLoad {
  std::string name;
  std::string path;
  std::vector<uint32_t> boards;  // Pipeline order.
  uint32_t slots = 0;
  uint32_t context_length = 0;
  bool operator==(const StoredModelLoad&) const = default;
};

// What of a board outlives the daemon: an operator's drain and the open health incident
// (host/health/health_monitor.h Incident, field for field). A board with neither has no row.
struct StoredBoardState {
  uint32_t board = 0;
  uint8_t operator_drain = 0;  // 0 none, 1 graceful, 2 evacuate.
  uint64_t incident_id = 0;    // 0: no open incident (the fields below are then empty).
  uint16_t incident_code = 0;
  std::string incident_message;
  std::string incident_state;  // drained | recovering | quarantined
  int64_t incident_opened_unix_ms = 0;
  uint32_t incident_recoveries = 0;
  std::string incident_last_action;
  bool empty() const { return operator_drain == 0 && incident_id == 0; }
  bool operator==(const StoredBoardState&) const = default;
};

// What a store has done since it was opened, for /metrics.
struct JobStoreStats {
  uint64_t commits = 0;
  uint64_t fsyncs = 0;
  double fsync_seconds = 0;
  uint64_t write_failures = 0;  // Writes or commits the disk refused (each retried).
  bool stalled = false;         // Writes wait for the disk; new jobs are refused.
};

// Not thread-safe; owned by the step loop's thread, like the JobTable that uses it.
class JobStore {
 public:
  virtual ~JobStore() = default;

  // Random and fixed for the store's life (a memory store: the process's). Every reply naming
  // a job carries it, so that a job id is never read against another store's jobs.
  virtual uint64_t instance_id() const = 0;

  // Takes a job just accepted (its id and accept_seq assigned), before the client is told so.
  // Returns:
  //   OK                 - held; the job may be acknowledged after the next Commit().
  //   ALREADY_EXISTS     - a job with this id is held already; nothing changed.
  //   RESOURCE_EXHAUSTED - the disk is full (Describe() names the file); the job must be
  //                        rejected. Jobs already accepted are kept.
  //   UNAVAILABLE        - the store cannot take writes now; the job must be rejected.
  [[nodiscard]] virtual Status Insert(std::unique_ptr<JobRecord> job) = 0;

  // The record of job `id`, or nullptr. The pointer stays valid until Erase(id).
  virtual JobRecord* Find(uint64_t id) = 0;

  // `job`'s chunk `chunk_index` (already in the record) was streamed. NOT_FOUND when the store
  // does not hold `job`. A write the disk cannot take now is kept and retried by Commit().
  [[nodiscard]] virtual Status ChunkAppended(const JobRecord& job, size_t chunk_index) = 0;

  // `job` ended (job.finished is set). NOT_FOUND when the store does not hold `job`.
  [[nodiscard]] virtual Status Finished(const JobRecord& job) = 0;

  // `job` is to end (job.cancel_requested, job.cancel_reason) once the Step it is in returns:
  // a restart before that ends it instead of running it again. NOT_FOUND when not held.
  [[nodiscard]] virtual Status CancelRequested(const JobRecord& job) = 0;

  // Drops a job (a finished one past retention). NOT_FOUND when it is not held.
  [[nodiscard]] virtual Status Erase(uint64_t id) = 0;

  // Calls `fn` for every job held, in the order they were accepted (accept_seq).
  virtual void ForEach(const std::function<void(JobRecord&)>& fn) = 0;
  virtual size_t size() const = 0;

  // True while some write is not yet committed (Commit() has work to do).
  virtual bool dirty() const = 0;
  // Ends the current group of writes: one transaction, generation written() + 1.
  // Returns:
  //   OK          - committed; durable once durable() reaches written().
  //   UNAVAILABLE - the disk refused (Describe() says why); every write is kept and retried by
  //                 the next Commit(), and Insert() refuses new jobs until one succeeds.
  [[nodiscard]] virtual Status Commit() = 0;
  // The generation of the last commit, and the last one known to be on disk (fsync'd). The
  // in-memory store has nothing to wait for: both are equal.
  virtual uint64_t written() const = 0;
  virtual uint64_t durable() const = 0;
  // Readable (an eventfd) when durable() moved; -1 when it moves only inside Commit().
  virtual int durable_event_fd() const = 0;
  // One line for logs and rejections: where the store is and, after a failure, what failed.
  virtual std::string Describe() const = 0;
  virtual JobStoreStats stats() const = 0;

  // Model loads to repeat after a restart: recorded when a load succeeds (one per replica,
  // keyed by name and boards: a load of the same name on the same boards replaces it), dropped
  // when the model goes away (every replica of `name`, or the one on `boards`; NOT_FOUND when
  // none is stored). Same commit rules as jobs.
  [[nodiscard]] virtual Status ModelLoaded(const StoredModelLoad& load) = 0;
  [[nodiscard]] virtual Status ModelRemoved(const std::string& name) = 0;
  [[nodiscard]] virtual Status ModelReplicaRemoved(const std::string& name,
                                                   const std::vector<uint32_t>& boards) = 0;
  virtual std::vector<StoredModelLoad> LoadedModels() const = 0;

  // Each board's drain and open incident, replaced whole (an empty state removes the board's
  // row). Same commit rules as jobs.
  [[nodiscard]] virtual Status BoardStateChanged(const StoredBoardState& state) = 0;
  virtual std::vector<StoredBoardState> BoardStates() const = 0;
};

}  // namespace wafer::host

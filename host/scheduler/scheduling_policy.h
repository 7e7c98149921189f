// The scheduler's policy seam: which queued job gets the next free KV-cache slot of a model.
// waferd's step loop owns the queue; a policy only orders it. FIFO lives here today; admission
// control, fairness and deadlines arrive as other implementations of this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace wafer::host {

// What a policy may know about a queued job.
struct QueuedJob {
  uint64_t job_id = 0;
  std::string model;
  std::string tenant;
  uint8_t priority = 0;
  int64_t accepted_ns = 0;
  uint64_t deadline_unix_ms = 0;  // 0: none.
};

// Not thread-safe; owned by waferd's step loop.
class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;

  // Adds a job; returns the number of jobs ahead of it for the same model.
  virtual size_t Push(const QueuedJob& job) = 0;
  // Removes a queued job (cancel, deadline). False when it is not queued.
  virtual bool Remove(uint64_t job_id) = 0;
  // Takes the next job for `model`, if any.
  virtual std::optional<uint64_t> PopNext(const std::string& model) = 0;
  // Jobs queued, in all and for one model.
  virtual size_t size() const = 0;
  virtual size_t QueuedFor(const std::string& model) const = 0;
  // Jobs ahead of `job_id` for its model; nullopt when it is not queued.
  virtual std::optional<size_t> Position(uint64_t job_id) const = 0;
};

// Returns nullptr for an unknown policy name. Known: "fifo".
std::unique_ptr<SchedulingPolicy> MakeSchedulingPolicy(const std::string& name);

}  // namespace wafer::host

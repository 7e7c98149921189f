// The scheduler's policy seam: which queued job gets the next free KV-cache slot of a model. A
// policy owns the queue's order and sees, through a SchedulerView, what already runs: the jobs
// holding slots and each model's capacity. It hears of every slot granted and released, so that
// a policy with tenants can account for what each one holds. FIFO lives here today; priorities,
// fair share and deadlines arrive as other implementations (see policy_factory.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wafer::host {

// What a policy may know about a queued job.
struct QueuedJob {
  uint64_t job_id = 0;
  std::string model;
  std::string tenant;
  uint8_t priority = 0;
  int64_t accepted_ns = 0;
  uint64_t deadline_unix_ms = 0;  // 0: none.
  uint32_t prompt_tokens = 0;
  uint32_t max_tokens = 0;
};

// A job holding a KV-cache slot.
struct RunningJob {
  QueuedJob job;
  uint32_t slot = 0;
  int64_t granted_ns = 0;
};

// A model's KV-cache slots and how many sequences one Step may carry.
struct ModelSlots {
  uint32_t total = 0;
  uint32_t free = 0;
  uint32_t running = 0;
  uint32_t max_batch = 0;  // Running jobs of the model are capped here even with free slots.
};

// What runs now, as the scheduler sees it. Not thread-safe; valid during the call it is passed to.
class SchedulerView {
 public:
  virtual ~SchedulerView() = default;
  // The jobs holding a slot of `model`, in the order the step planner serves them.
  virtual std::vector<RunningJob> Running(const std::string& model) const = 0;
  // Zeros for a model that is not open.
  virtual ModelSlots Slots(const std::string& model) const = 0;
};

// Not thread-safe; owned by the Scheduler on waferd's step loop.
class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;

  // Adds a job; returns the number of jobs ahead of it for the same model.
  virtual size_t Push(const QueuedJob& job) = 0;
  // Removes a queued job (cancel, deadline). False when it is not queued.
  virtual bool Remove(uint64_t job_id) = 0;
  // Takes the job that should get the free slot of `model` that `view` shows, if any. A policy
  // may hold queued jobs back (nullopt) even when slots are free.
  virtual std::optional<QueuedJob> PopNext(const std::string& model,
                                           const SchedulerView& view) = 0;
  // Takes every job queued for `model`, in queue order (the model is going away).
  virtual std::vector<QueuedJob> TakeAll(const std::string& model) = 0;
  // A slot was granted to `job` (after PopNext), or released by it: finished, cancelled, or
  // re-queued after its board was lost (then Push follows).
  virtual void OnGranted(const RunningJob& job) = 0;
  virtual void OnReleased(const RunningJob& job) = 0;
  // Jobs queued, in all and for one model.
  virtual size_t size() const = 0;
  virtual size_t QueuedFor(const std::string& model) const = 0;
  // Jobs ahead of `job_id` for its model; nullopt when it is not queued.
  virtual std::optional<size_t> Position(uint64_t job_id) const = 0;
};

}  // namespace wafer::host

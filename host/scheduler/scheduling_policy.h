// The scheduler's policy seam: which queued job gets the next free KV-cache slot of a model,
// which queued job a full queue sheds, and which running job yields its slot to a waiting one. A
// policy owns the queue's order and sees, through a SchedulerView, what already runs: the jobs
// holding slots and each model's capacity. It hears of every slot granted and released and of
// the tokens each running job is served, so that a policy with tenants can account for them.
// Implementations: FairPolicy (classes, tenant shares, deadlines; the default) and FifoPolicy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <tuple>
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
  uint8_t priority_class = 0;  // Index into scheduler.classes: 0 is the highest.
  uint64_t accept_seq = 0;     // Acceptance order: ties go to the earlier job.
  // On this process's clock: the TTFT target (while no token has come) or the completion
  // deadline, whichever is earlier; max when the job has neither.
  int64_t order_deadline_ns = std::numeric_limits<int64_t>::max();
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
  // How many of Running(model) are of class `cls` or a lower one (a larger index): cheap, for
  // deciding whether Running() is worth copying.
  virtual uint32_t RunningAtOrBelow(const std::string& model, uint32_t cls) const = 0;
};

// What a new job would wait behind (SchedulingPolicy::QueuedAhead).
struct QueueAhead {
  size_t before = 0;  // Jobs that start before it whatever arrives later.
  // Jobs of its own tenant and class that start before it, at the tenant's share of what the
  // class is left; with `shares` false there are none and later arrivals never go first.
  size_t own = 0;
  bool shares = false;  // Classes go strictly first and tenants share a class by weight.
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
  // `job_id`, holding a slot, was served these tokens in a Step (prefill read, tokens output).
  virtual void OnServed(uint64_t job_id, uint32_t prompt_tokens, uint32_t output_tokens) = 0;

  // The queued job of `model` to drop so that a job of class `newcomer_class` fits a full
  // queue: the newest job of the lowest class below it. nullopt when none is lower (or the
  // policy never sheds). The job stays queued; the caller ends it.
  virtual std::optional<QueuedJob> ShedCandidate(const std::string& model,
                                                 uint32_t newcomer_class) const = 0;
  // The running jobs of `model` that should give their slots to queued jobs of higher classes:
  // one for each such queued job the free slots `view` shows do not cover, in the order they
  // should go (empty when none may, or the policy never preempts). A job already asked to
  // yield is named again while it still runs: the caller skips it.
  virtual std::vector<uint64_t> PreemptCandidates(const std::string& model,
                                                  const SchedulerView& view,
                                                  int64_t now_ns) const = 0;

  // Jobs queued, in all and for one model.
  virtual size_t size() const = 0;
  virtual size_t QueuedFor(const std::string& model) const = 0;
  // Jobs of `model` in class `cls`, and of `tenant` for any model.
  virtual size_t QueuedInClass(const std::string& model, uint32_t cls) const = 0;
  virtual size_t QueuedForTenant(const std::string& tenant) const = 0;
  // What a new job of class `cls` for `model` from `tenant` would wait behind.
  virtual QueueAhead QueuedAhead(const std::string& model, uint32_t cls,
                                 const std::string& tenant) const = 0;
  // Jobs ahead of `job_id` for its model; nullopt when it is not queued.
  virtual std::optional<size_t> Position(uint64_t job_id) const = 0;
  // Adds the number of queued jobs per (model, class, tenant) to `out` (for /metrics).
  using QueueCounts = std::map<std::tuple<std::string, uint32_t, std::string>, size_t>;
  virtual void CountQueued(QueueCounts* out) const = 0;
};

}  // namespace wafer::host

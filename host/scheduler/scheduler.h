// The scheduler proper: the policy's queue and each model replica's KV-cache slots. Jobs are
// queued here per model name, granted a slot on one of its replicas when one is free (in the
// order the policy picks) and release it when they finish or lose their board; the step planner
// serves each replica's running jobs in `RunOrder`.
//
// Routing: a model loaded as several replicas (each a copy on its own boards, with its own slots)
// has one queue. A job is not bound to a replica while queued: whichever replica frees a slot
// first takes the next job, so every job goes to the first replica with a free slot, which is
// the replica where its expected wait is least; among several with free slots, the step loop
// grants to the least loaded (StepLoop::RouteQueued). A job re-queued (board loss, evacuation,
// preemption) may land on any replica.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "host/jobs/job_record.h"
#include "host/scheduler/scheduling_policy.h"

namespace wafer::host {

// What the policy sees of `job`.
QueuedJob QueuedJobOf(const JobRecord& job);

struct SlotGrant {
  QueuedJob job;
  uint32_t slot = 0;
};

// Not thread-safe; owned by the step loop's thread.
class Scheduler final : private SchedulerView {
 public:
  // `max_batch` caps the running jobs of one model (sequences per Step).
  // REQUIRES: `clock` outlives the scheduler.
  Scheduler(std::unique_ptr<SchedulingPolicy> policy, uint32_t max_batch, const Clock& clock);

  // Replica `replica` of `model` became ready with `slots` free slots (slot ids 0..slots-1).
  // Replaces an earlier opening of the same replica, which must have no running jobs. Replica
  // ids are the caller's (any number, stable while the replica lives).
  void OpenModel(const std::string& model, uint32_t replica, uint32_t slots);
  // The replica went away (unloaded, failed, lost): its slots are gone. REQUIRES: no running
  // jobs on it.
  void CloseModel(const std::string& model, uint32_t replica);

  // Queues a job; returns how many jobs are ahead of it for its model.
  size_t Enqueue(const QueuedJob& job) { return policy_->Push(job); }
  // Takes a queued job out (cancelled, expired). False when it is not queued.
  bool Dequeue(uint64_t job_id) { return policy_->Remove(job_id); }
  // Takes every job queued for `model` (it is going away), in queue order.
  std::vector<QueuedJob> TakeQueued(const std::string& model) { return policy_->TakeAll(model); }

  // Grants the free slots of `model`'s replica `replica` to jobs queued for `model` in the
  // policy's order, while fewer than max_batch run on it, `limit` at most; appends each grant to
  // `grants`.
  void Admit(const std::string& model, uint32_t replica, std::vector<SlotGrant>* grants,
             size_t limit = SIZE_MAX);
  // `job_id` gives its slot back (on whichever replica of `model` holds it). False when it
  // holds none of `model`'s.
  bool Release(const std::string& model, uint64_t job_id);

  // The running jobs of `model`'s replica `replica` in the order the step planner serves them;
  // the planner rotates it. Empty for a replica that is not open.
  std::deque<uint64_t>& RunOrder(const std::string& model, uint32_t replica);

  // `job_id` (holding a slot) was served these tokens: the policy's fair-share account.
  void Served(uint64_t job_id, uint32_t prompt_tokens, uint32_t output_tokens) {
    policy_->OnServed(job_id, prompt_tokens, output_tokens);
  }
  // The queued job a full queue of `model` drops for a newcomer of class `cls`, if any (it
  // stays queued until the caller ends it).
  std::optional<QueuedJob> ShedCandidate(const std::string& model, uint32_t cls) const {
    return policy_->ShedCandidate(model, cls);
  }
  // The running jobs of `model` (any replica) that should yield their slots to waiting higher
  // classes.
  std::vector<uint64_t> PreemptCandidates(const std::string& model) const;

  size_t queued() const { return policy_->size(); }
  size_t QueuedFor(const std::string& model) const { return policy_->QueuedFor(model); }
  size_t QueuedInClass(const std::string& model, uint32_t cls) const {
    return policy_->QueuedInClass(model, cls);
  }
  size_t QueuedForTenant(const std::string& tenant) const {
    return policy_->QueuedForTenant(tenant);
  }
  QueueAhead QueuedAhead(const std::string& model, uint32_t cls,
                         const std::string& tenant) const {
    return policy_->QueuedAhead(model, cls, tenant);
  }
  std::optional<size_t> Position(uint64_t job_id) const { return policy_->Position(job_id); }
  size_t running() const { return running_; }
  // Running jobs of `model` (all replicas) in class `cls` or any lower one (a larger index).
  uint32_t RunningAtOrBelow(const std::string& model, uint32_t cls) const override;
  void CountQueued(SchedulingPolicy::QueueCounts* out) const { policy_->CountQueued(out); }
  // Summed over `model`'s replicas (max_batch too: each replica runs up to max_batch).
  ModelSlots Slots(const std::string& model) const override;
  // One replica's slots.
  ModelSlots ReplicaSlots(const std::string& model, uint32_t replica) const;

 private:
  struct Pool {
    uint32_t total = 0;
    std::vector<uint32_t> free;  // Popped from the back: slot 0 first.
    std::deque<uint64_t> order;
    std::unordered_map<uint64_t, RunningJob> running;
    std::map<uint32_t, uint32_t> classes;  // Running jobs per class.
  };
  std::vector<RunningJob> Running(const std::string& model) const override;

  std::unique_ptr<SchedulingPolicy> policy_;
  const uint32_t max_batch_;
  const Clock& clock_;
  Pool* FindPool(const std::string& model, uint32_t replica);
  const Pool* FindPool(const std::string& model, uint32_t replica) const;

  std::map<std::string, std::map<uint32_t, Pool>> pools_;  // Model -> replica -> its slots.
  std::deque<uint64_t> empty_order_;  // RunOrder of a model that is not open.
  size_t running_ = 0;
};

}  // namespace wafer::host

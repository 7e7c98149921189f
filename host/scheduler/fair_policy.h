// The default policy: priority classes served strictly in order; within a class, tenants share
// by weight the tokens they are served (a Virtual Token Counter, Sheng et al., OSDI'24); within a
// tenant, earliest deadline first (TTFT target or completion deadline), then acceptance order.
// It never holds work back: whenever the scheduler has a slot and a job is queued, one is given.
//
// The counter of tenant t in class c grows by (prompt tokens x prompt_token_cost + output tokens
// x output_token_cost) / weight(t) as its jobs are served. The next slot goes to the backlogged
// tenant (one with a job queued for the model) whose counter is lowest. A tenant that becomes
// backlogged again is lifted to the lowest counter of the tenants already backlogged in its
// class, so that idling banks no credit: between two tenants backlogged together, the weighted
// service gap stays bounded by about one job's cost (VTC's bound).
//
// Full queue: ShedCandidate names the newest job of the lowest class below the newcomer's.
// Preemption: each queued job that the free slots do not cover (they go to the highest classes)
// is matched with a running job at least `min_class_gap` classes below its own that has run
// `min_run_ms` since its grant; the lowest waiting class picks first, each taking the lowest
// class left (ties: the most recently granted, which loses the least work).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "host/config/scheduling_config.h"
#include "host/scheduler/scheduling_policy.h"

namespace wafer::host {

// Not thread-safe; owned by waferd's step loop. Push, Remove and PopNext are
// O(log jobs + tenants backlogged in the class).
class FairPolicy final : public SchedulingPolicy {
 public:
  explicit FairPolicy(const SchedulingConfig& config);

  size_t Push(const QueuedJob& job) override;
  bool Remove(uint64_t job_id) override;
  std::optional<QueuedJob> PopNext(const std::string& model, const SchedulerView& view) override;
  std::vector<QueuedJob> TakeAll(const std::string& model) override;
  void OnGranted(const RunningJob& job) override;
  void OnReleased(const RunningJob& job) override;
  void OnServed(uint64_t job_id, uint32_t prompt_tokens, uint32_t output_tokens) override;
  std::optional<QueuedJob> ShedCandidate(const std::string& model,
                                         uint32_t newcomer_class) const override;
  std::vector<uint64_t> PreemptCandidates(const std::string& model, const SchedulerView& view,
                                          int64_t now_ns) const override;
  size_t size() const override { return index_.size(); }
  size_t QueuedFor(const std::string& model) const override;
  size_t QueuedInClass(const std::string& model, uint32_t cls) const override;
  size_t QueuedForTenant(const std::string& tenant) const override;
  // Before it: every job of the higher classes; its own: the tenant's jobs in its class.
  QueueAhead QueuedAhead(const std::string& model, uint32_t cls,
                         const std::string& tenant) const override;
  // Jobs of higher classes, plus jobs of its class accepted before it (its own tenant's in
  // deadline order): the order tenants' turns interleave in is not known in advance.
  std::optional<size_t> Position(uint64_t job_id) const override;
  void CountQueued(QueueCounts* out) const override;

  // The tenant's virtual token counter in class `cls` (tests, metrics).
  double Counter(uint32_t cls, const std::string& tenant) const;

 private:
  // Within a tenant: earliest deadline, then acceptance, then id.
  using Key = std::tuple<int64_t, uint64_t, uint64_t>;
  struct ClassQueue {
    std::map<std::string, std::map<Key, QueuedJob>> tenants;  // Only tenants with jobs.
    std::map<uint64_t, uint64_t> arrivals;                    // accept_seq -> job id.
  };
  struct ModelQueue {
    std::vector<ClassQueue> classes;
    size_t size = 0;
  };
  // Kept while the tenant has jobs queued or running in the class; a tenant that comes back
  // starts from the class's floor, so forgetting it gives it no credit.
  struct Account {
    double counter = 0;     // Weighted tokens served (VTC).
    size_t backlogged = 0;  // Jobs queued in this class, over every model.
    size_t running = 0;     // Jobs holding slots.
  };
  struct ClassAccounts {
    std::unordered_map<std::string, Account> tenants;
    // The counter of the last tenant that stopped being backlogged: a tenant becoming
    // backlogged while no other is starts at least here.
    double floor = 0;
  };
  // A job holding a slot. `account` stays valid while it runs: an account with a running job
  // is never forgotten, and unordered_map nodes do not move.
  struct Running {
    std::string tenant;
    uint32_t cls = 0;
    Account* account = nullptr;
    double weight = 1;
  };

  static Key KeyOf(const QueuedJob& job) {
    return {job.order_deadline_ns, job.accept_seq, job.job_id};
  }
  uint32_t ClassIndex(const QueuedJob& job) const;
  // A tenant's first job queued in class `cls` lifts its counter (see above).
  void Backlog(uint32_t cls, const std::string& tenant);
  void Unbacklog(uint32_t cls, const std::string& tenant);
  // Drops the account once it has nothing queued or running.
  void MaybeForget(uint32_t cls, const std::string& tenant);
  double Weight(const std::string& tenant);
  // Jobs of `model` in classes above `cls`.
  size_t QueuedAbove(const std::string& model, uint32_t cls) const;
  void Erase(ModelQueue& queue, const QueuedJob& job);

  const SchedulingConfig config_;
  std::map<std::string, ModelQueue> models_;
  std::unordered_map<uint64_t, QueuedJob> index_;  // Every queued job.
  std::vector<ClassAccounts> accounts_;  // Per class.
  std::unordered_map<std::string, double> weights_;  // Cache of config_.TenantNamed().weight.
  std::unordered_map<std::string, size_t> per_tenant_;
  std::unordered_map<uint64_t, Running> running_;
};

}  // namespace wafer::host

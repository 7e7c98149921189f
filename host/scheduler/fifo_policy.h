// First come, first served, per model: priorities, classes, tenants and deadlines are carried
// and counted but never change the order; nothing is shed or preempted. The baseline.
#pragma once

#include <list>
#include <map>
#include <unordered_map>

#include "host/scheduler/scheduling_policy.h"

namespace wafer::host {

// Not thread-safe; owned by waferd's step loop. Push, Remove and PopNext are O(log models).
class FifoPolicy final : public SchedulingPolicy {
 public:
  size_t Push(const QueuedJob& job) override;
  bool Remove(uint64_t job_id) override;
  // Serves the oldest job of `model` whenever the scheduler has a slot: ignores `view`.
  std::optional<QueuedJob> PopNext(const std::string& model, const SchedulerView& view) override;
  std::vector<QueuedJob> TakeAll(const std::string& model) override;
  // FIFO keeps no account of what runs.
  void OnGranted(const RunningJob&) override {}
  void OnReleased(const RunningJob&) override {}
  void OnServed(uint64_t, uint32_t, uint32_t) override {}
  std::optional<QueuedJob> ShedCandidate(const std::string&, uint32_t) const override {
    return std::nullopt;
  }
  std::vector<uint64_t> PreemptCandidates(const std::string&, const SchedulerView&,
                                          int64_t) const override {
    return {};
  }
  size_t size() const override { return index_.size(); }
  size_t QueuedFor(const std::string& model) const override;
  size_t QueuedInClass(const std::string& model, uint32_t cls) const override;
  size_t QueuedForTenant(const std::string& tenant) const override;
  // Every queued job of the model: arrival order ignores classes and tenants.
  QueueAhead QueuedAhead(const std::string& model, uint32_t, const std::string&) const override {
    return QueueAhead{QueuedFor(model), 0, false};
  }
  std::optional<size_t> Position(uint64_t job_id) const override;
  void CountQueued(QueueCounts* out) const override;

 private:
  using Queue = std::list<QueuedJob>;
  std::map<std::string, Queue> queues_;
  std::unordered_map<uint64_t, std::pair<Queue*, Queue::iterator>> index_;
  std::unordered_map<std::string, size_t> per_tenant_;
  QueueCounts per_key_;  // (model, class, tenant) -> queued.
  void Count(const QueuedJob& job, int delta);
};

}  // namespace wafer::host

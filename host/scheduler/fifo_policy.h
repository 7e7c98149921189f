// First come, first served, per model. Priorities and tenants are carried but not used.
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
  size_t size() const override { return index_.size(); }
  size_t QueuedFor(const std::string& model) const override;
  std::optional<size_t> Position(uint64_t job_id) const override;

 private:
  using Queue = std::list<QueuedJob>;
  std::map<std::string, Queue> queues_;
  std::unordered_map<uint64_t, std::pair<Queue*, Queue::iterator>> index_;
};

}  // namespace wafer::host

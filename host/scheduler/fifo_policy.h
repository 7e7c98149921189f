// First come, first served, per model.
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
  std::optional<uint64_t> PopNext(const std::string& model) override;
  size_t size() const override { return index_.size(); }
  size_t QueuedFor(const std::string& model) const override;
  std::optional<size_t> Position(uint64_t job_id) const override;

 private:
  using Queue = std::list<uint64_t>;
  std::map<std::string, Queue> queues_;
  std::unordered_map<uint64_t, std::pair<Queue*, Queue::iterator>> index_;
};

}  // namespace wafer::host

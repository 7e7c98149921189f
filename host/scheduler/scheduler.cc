#include "host/scheduler/scheduler.h"

#include <algorithm>
#include <cassert>

namespace wafer::host {

QueuedJob QueuedJobOf(const JobRecord& job) {
  QueuedJob q{job.id,
              job.model,
              job.tenant,
              job.priority,
              job.accepted_ns,
              job.deadline_unix_ms,
              static_cast<uint32_t>(job.prompt.size()),
              job.max_tokens,
              job.priority_class,
              job.accept_seq};
  // Deadlines on this process's clock, from the acceptance they are relative to.
  if (job.deadline_unix_ms != 0) {
    const int64_t after_ms = static_cast<int64_t>(std::min<uint64_t>(
        job.deadline_unix_ms - std::min<uint64_t>(job.deadline_unix_ms,
                                                  static_cast<uint64_t>(job.accepted_unix_ms)),
        uint64_t{1} << 40));
    q.order_deadline_ns = job.accepted_ns + after_ms * 1'000'000;
  }
  if (job.ttft_target_ms != 0 && job.first_token_ns == 0) {
    q.order_deadline_ns = std::min(q.order_deadline_ns,
                                   job.accepted_ns + int64_t{job.ttft_target_ms} * 1'000'000);
  }
  return q;
}

Scheduler::Scheduler(std::unique_ptr<SchedulingPolicy> policy, uint32_t max_batch,
                     const Clock& clock)
    : policy_(std::move(policy)), max_batch_(max_batch), clock_(clock) {}

void Scheduler::OpenModel(const std::string& model, uint32_t replica, uint32_t slots) {
  Pool& pool = pools_[model][replica];
  assert(pool.running.empty());
  pool = Pool{};
  pool.total = slots;
  for (uint32_t s = slots; s > 0; --s) pool.free.push_back(s - 1);
}

void Scheduler::CloseModel(const std::string& model, uint32_t replica) {
  auto it = pools_.find(model);
  if (it == pools_.end()) return;
  auto at = it->second.find(replica);
  if (at == it->second.end()) return;
  assert(at->second.running.empty());
  it->second.erase(at);
  if (it->second.empty()) pools_.erase(it);
}

Scheduler::Pool* Scheduler::FindPool(const std::string& model, uint32_t replica) {
  auto it = pools_.find(model);
  if (it == pools_.end()) return nullptr;
  auto at = it->second.find(replica);
  return at == it->second.end() ? nullptr : &at->second;
}

const Scheduler::Pool* Scheduler::FindPool(const std::string& model, uint32_t replica) const {
  return const_cast<Scheduler*>(this)->FindPool(model, replica);
}

void Scheduler::Admit(const std::string& model, uint32_t replica,
                      std::vector<SlotGrant>* grants, size_t limit) {
  Pool* pool = FindPool(model, replica);
  if (pool == nullptr) return;
  for (size_t granted = 0;
       granted < limit && !pool->free.empty() && pool->running.size() < max_batch_; ++granted) {
    std::optional<QueuedJob> next = policy_->PopNext(model, *this);
    if (!next) return;
    RunningJob running{std::move(*next), pool->free.back(), clock_.NowNanos()};
    pool->free.pop_back();
    pool->order.push_back(running.job.job_id);
    policy_->OnGranted(running);
    ++pool->classes[running.job.priority_class];
    grants->push_back(SlotGrant{running.job, running.slot});
    pool->running.emplace(running.job.job_id, std::move(running));
    ++running_;
  }
}

bool Scheduler::Release(const std::string& model, uint64_t job_id) {
  auto it = pools_.find(model);
  if (it == pools_.end()) return false;
  for (auto& [replica, pool] : it->second) {
    auto run = pool.running.find(job_id);
    if (run == pool.running.end()) continue;
    pool.free.push_back(run->second.slot);
    auto at = std::find(pool.order.begin(), pool.order.end(), job_id);
    if (at != pool.order.end()) pool.order.erase(at);
    policy_->OnReleased(run->second);
    if (--pool.classes[run->second.job.priority_class] == 0) {
      pool.classes.erase(run->second.job.priority_class);
    }
    pool.running.erase(run);
    --running_;
    return true;
  }
  return false;
}

std::deque<uint64_t>& Scheduler::RunOrder(const std::string& model, uint32_t replica) {
  Pool* pool = FindPool(model, replica);
  if (pool == nullptr) {
    empty_order_.clear();
    return empty_order_;
  }
  return pool->order;
}

uint32_t Scheduler::RunningAtOrBelow(const std::string& model, uint32_t cls) const {
  auto it = pools_.find(model);
  if (it == pools_.end()) return 0;
  uint32_t n = 0;
  for (const auto& [replica, pool] : it->second) {
    for (auto c = pool.classes.lower_bound(cls); c != pool.classes.end(); ++c) n += c->second;
  }
  return n;
}

std::vector<uint64_t> Scheduler::PreemptCandidates(const std::string& model) const {
  if (pools_.count(model) == 0) return {};
  return policy_->PreemptCandidates(model, *this, clock_.NowNanos());
}

ModelSlots Scheduler::Slots(const std::string& model) const {
  ModelSlots sum;
  auto it = pools_.find(model);
  if (it == pools_.end()) return sum;
  for (const auto& [replica, pool] : it->second) {
    sum.total += pool.total;
    sum.free += static_cast<uint32_t>(pool.free.size());
    sum.running += static_cast<uint32_t>(pool.running.size());
    sum.max_batch += max_batch_;
  }
  return sum;
}

ModelSlots Scheduler::ReplicaSlots(const std::string& model, uint32_t replica) const {
  const Pool* pool = FindPool(model, replica);
  if (pool == nullptr) return ModelSlots{};
  return ModelSlots{pool->total, static_cast<uint32_t>(pool->free.size()),
                    static_cast<uint32_t>(pool->running.size()), max_batch_};
}

std::vector<RunningJob> Scheduler::Running(const std::string& model) const {
  std::vector<RunningJob> out;
  auto it = pools_.find(model);
  if (it == pools_.end()) return out;
  for (const auto& [replica, pool] : it->second) {
    for (uint64_t id : pool.order) out.push_back(pool.running.at(id));
  }
  return out;
}

}  // namespace wafer::host

#include "host/scheduler/fifo_policy.h"

#include <iterator>

namespace wafer::host {

void FifoPolicy::Count(const QueuedJob& job, int delta) {
  size_t& of_tenant = per_tenant_[job.tenant];
  const auto key = std::make_tuple(job.model, uint32_t{job.priority_class}, job.tenant);
  size_t& of_key = per_key_[key];
  of_tenant += delta;
  of_key += delta;
  if (of_key == 0) per_key_.erase(key);
  if (of_tenant == 0) per_tenant_.erase(job.tenant);
}

void FifoPolicy::CountQueued(QueueCounts* out) const {
  for (const auto& [key, n] : per_key_) (*out)[key] += n;
}

size_t FifoPolicy::QueuedInClass(const std::string& model, uint32_t cls) const {
  // The (model, cls, tenant) keys of one class sort together: sum their run.
  size_t n = 0;
  for (auto it = per_key_.lower_bound({model, cls, std::string()});
       it != per_key_.end() && std::get<0>(it->first) == model && std::get<1>(it->first) == cls;
       ++it) {
    n += it->second;
  }
  return n;
}

size_t FifoPolicy::QueuedForTenant(const std::string& tenant) const {
  auto it = per_tenant_.find(tenant);
  return it == per_tenant_.end() ? 0 : it->second;
}

size_t FifoPolicy::Push(const QueuedJob& job) {
  Count(job, +1);
  Queue& q = queues_[job.model];
  size_t ahead = q.size();
  q.push_back(job);
  index_[job.job_id] = {&q, std::prev(q.end())};
  return ahead;
}

bool FifoPolicy::Remove(uint64_t job_id) {
  auto it = index_.find(job_id);
  if (it == index_.end()) return false;
  Count(*it->second.second, -1);
  it->second.first->erase(it->second.second);
  index_.erase(it);
  return true;
}

std::optional<QueuedJob> FifoPolicy::PopNext(const std::string& model, const SchedulerView&) {
  auto it = queues_.find(model);
  if (it == queues_.end() || it->second.empty()) return std::nullopt;
  QueuedJob job = std::move(it->second.front());
  it->second.pop_front();
  index_.erase(job.job_id);
  Count(job, -1);
  return job;
}

std::vector<QueuedJob> FifoPolicy::TakeAll(const std::string& model) {
  std::vector<QueuedJob> out;
  auto it = queues_.find(model);
  if (it == queues_.end()) return out;
  for (QueuedJob& job : it->second) {
    index_.erase(job.job_id);
    Count(job, -1);
    out.push_back(std::move(job));
  }
  it->second.clear();
  return out;
}

size_t FifoPolicy::QueuedFor(const std::string& model) const {
  auto it = queues_.find(model);
  return it == queues_.end() ? 0 : it->second.size();
}

std::optional<size_t> FifoPolicy::Position(uint64_t job_id) const {
  auto it = index_.find(job_id);
  if (it == index_.end()) return std::nullopt;
  const Queue& q = *it->second.first;
  return static_cast<size_t>(std::distance(q.begin(), Queue::const_iterator(it->second.second)));
}

}  // namespace wafer::host

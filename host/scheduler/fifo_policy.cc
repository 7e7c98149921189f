#include "host/scheduler/fifo_policy.h"

#include <iterator>

namespace wafer::host {

size_t FifoPolicy::Push(const QueuedJob& job) {
  Queue& q = queues_[job.model];
  size_t ahead = q.size();
  q.push_back(job);
  index_[job.job_id] = {&q, std::prev(q.end())};
  return ahead;
}

bool FifoPolicy::Remove(uint64_t job_id) {
  auto it = index_.find(job_id);
  if (it == index_.end()) return false;
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
  return job;
}

std::vector<QueuedJob> FifoPolicy::TakeAll(const std::string& model) {
  std::vector<QueuedJob> out;
  auto it = queues_.find(model);
  if (it == queues_.end()) return out;
  for (QueuedJob& job : it->second) {
    index_.erase(job.job_id);
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

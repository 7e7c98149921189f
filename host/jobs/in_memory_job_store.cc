#include "host/jobs/in_memory_job_store.h"

#include <algorithm>
#include <vector>

namespace wafer::host {

Status InMemoryJobStore::Insert(std::unique_ptr<JobRecord> job) {
  const uint64_t id = job->id;
  return jobs_.emplace(id, std::move(job)).second ? OkStatus() : AlreadyExists();
}

JobRecord* InMemoryJobStore::Find(uint64_t id) {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

Status InMemoryJobStore::ChunkAppended(const JobRecord& job, size_t chunk_index) {
  if (Find(job.id) != &job || chunk_index >= job.chunk_starts.size()) return NotFound();
  return OkStatus();
}

Status InMemoryJobStore::Finished(const JobRecord& job) {
  return Find(job.id) == &job ? OkStatus() : NotFound();
}

Status InMemoryJobStore::Erase(uint64_t id) {
  return jobs_.erase(id) == 1 ? OkStatus() : NotFound();
}

void InMemoryJobStore::ForEach(const std::function<void(JobRecord&)>& fn) {
  std::vector<JobRecord*> records;
  records.reserve(jobs_.size());
  for (auto& [id, job] : jobs_) records.push_back(job.get());
  std::sort(records.begin(), records.end(),
            [](const JobRecord* a, const JobRecord* b) { return a->id < b->id; });
  for (JobRecord* job : records) fn(*job);
}

}  // namespace wafer::host

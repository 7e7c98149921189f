// A JobStore whose storage is the records themselves, in this process's memory: they outlive
// the JobTable that wrote them, not the process. waferd's store until the durable one exists.
#pragma once

#include <unordered_map>

#include "host/jobs/job_store.h"

namespace wafer::host {

// Not thread-safe; see JobStore.
class InMemoryJobStore final : public JobStore {
 public:
  Status Insert(std::unique_ptr<JobRecord> job) override;
  JobRecord* Find(uint64_t id) override;
  // The record is the storage: these only check that the store holds `job`.
  Status ChunkAppended(const JobRecord& job, size_t chunk_index) override;
  Status Finished(const JobRecord& job) override;
  Status Erase(uint64_t id) override;
  void ForEach(const std::function<void(JobRecord&)>& fn) override;
  size_t size() const override { return jobs_.size(); }

 private:
  std::unordered_map<uint64_t, std::unique_ptr<JobRecord>> jobs_;
};

}  // namespace wafer::host

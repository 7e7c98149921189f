// A JobStore whose storage is the records themselves, in this process's memory: they outlive
// the JobTable that wrote them, not the process (`store.path: memory`). Also the cache the
// durable store keeps in front of its disk.
#pragma once

#include <map>
#include <utility>
#include <vector>
#include <unordered_map>

#include "host/jobs/job_store.h"

namespace wafer::host {

// Not thread-safe; see JobStore.
class InMemoryJobStore final : public JobStore {
 public:
  // `instance_id`: 0 draws a random one.
  explicit InMemoryJobStore(uint64_t instance_id = 0);

  uint64_t instance_id() const override { return instance_id_; }
  Status Insert(std::unique_ptr<JobRecord> job) override;
  JobRecord* Find(uint64_t id) override;
  // The record is the storage: these only check that the store holds `job`.
  Status ChunkAppended(const JobRecord& job, size_t chunk_index) override;
  Status Finished(const JobRecord& job) override;
  Status CancelRequested(const JobRecord& job) override {
    return Find(job.id) == &job ? OkStatus() : NotFound();
  }
  Status Erase(uint64_t id) override;
  void ForEach(const std::function<void(JobRecord&)>& fn) override;
  size_t size() const override { return jobs_.size(); }
  // Nothing here outlives the process, so nothing waits for a commit.
  bool dirty() const override { return false; }
  Status Commit() override { return OkStatus(); }
  uint64_t written() const override { return 0; }
  uint64_t durable() const override { return 0; }
  int durable_event_fd() const override { return -1; }
  std::string Describe() const override { return "job store in memory"; }
  JobStoreStats stats() const override { return {}; }
  Status ModelLoaded(const StoredModelLoad& load) override;
  Status ModelRemoved(const std::string& name) override;
  Status ModelReplicaRemoved(const std::string& name,
                             const std::vector<uint32_t>& boards) override;
  Status BoardStateChanged(const StoredBoardState& state) override;
  std::vector<StoredBoardState> BoardStates() const override;
  std::vector<StoredModelLoad> LoadedModels() const override;

 private:
  const uint64_t instance_id_;
  std::unordered_map<uint64_t, std::unique_ptr<JobRecord>> jobs_;
  std::map<uint64_t, JobRecord*> by_accept_seq_;
  // By name, then by boards: one load per replica.
  std::map<std::pair<std::string, std::vector<uint32_t>>, StoredModelLoad> models_;
  std::map<uint32_t, StoredBoardState> boards_;
};

// A random 64-bit number that is not 0 (libsodium's generator).
uint64_t RandomNonZeroId();

}  // namespace wafer::host

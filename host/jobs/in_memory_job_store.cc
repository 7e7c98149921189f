#include "host/jobs/in_memory_job_store.h"

#include <sodium.h>

#include <cstdlib>
#include <vector>

namespace wafer::host {

uint64_t RandomNonZeroId() {
  // sodium_init is idempotent and thread-safe; it fails only when no entropy source exists,
  // which no id could then be drawn from.
  if (sodium_init() < 0) std::abort();
  uint64_t id = 0;
  while (id == 0) randombytes_buf(&id, sizeof(id));
  return id;
}

InMemoryJobStore::InMemoryJobStore(uint64_t instance_id)
    : instance_id_(instance_id != 0 ? instance_id : RandomNonZeroId()) {}

Status InMemoryJobStore::Insert(std::unique_ptr<JobRecord> job) {
  const uint64_t id = job->id;
  JobRecord* record = job.get();
  if (!jobs_.emplace(id, std::move(job)).second) return AlreadyExists();
  by_accept_seq_[record->accept_seq] = record;
  return OkStatus();
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
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return NotFound();
  auto order = by_accept_seq_.find(it->second->accept_seq);
  if (order != by_accept_seq_.end() && order->second == it->second.get()) {
    by_accept_seq_.erase(order);
  }
  jobs_.erase(it);
  return OkStatus();
}

void InMemoryJobStore::ForEach(const std::function<void(JobRecord&)>& fn) {
  // A copy of the order, so that `fn` may erase the job it is given.
  std::vector<JobRecord*> records;
  records.reserve(by_accept_seq_.size());
  for (auto& [seq, job] : by_accept_seq_) records.push_back(job);
  for (JobRecord* job : records) fn(*job);
}

Status InMemoryJobStore::ModelLoaded(const StoredModelLoad& load) {
  models_[{load.name, load.boards}] = load;
  return OkStatus();
}

Status InMemoryJobStore::ModelRemoved(const std::string& name) {
  const size_t erased = std::erase_if(models_, [&](const auto& entry) {
    return entry.first.first == name;
  });
  return erased > 0 ? OkStatus() : NotFound();
}

Status InMemoryJobStore::ModelReplicaRemoved(const std::string& name,
                                             const std::vector<uint32_t>& boards) {
  return models_.erase({name, boards}) > 0 ? OkStatus() : NotFound();
}

Status InMemoryJobStore::BoardStateChanged(const StoredBoardState& state) {
  if (state.empty()) {
    boards_.erase(state.board);
  } else {
    boards_[state.board] = state;
  }
  return OkStatus();
}

std::vector<StoredBoardState> InMemoryJobStore::BoardStates() const {
  std::vector<StoredBoardState> out;
  for (const auto& [board, state] : boards_) out.push_back(state);
  return out;
}

std::vector<StoredModelLoad> InMemoryJobStore::LoadedModels() const {
  std::vector<StoredModelLoad> loads;
  for (const auto& [key, load] : models_) loads.push_back(load);
  return loads;
}

}  // namespace wafer::host

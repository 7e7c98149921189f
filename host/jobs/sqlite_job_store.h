// The durable JobStore: every accepted job, its chunks, its ending and the model loads, in one
// SQLite file in WAL mode. Writes go into one open transaction; Commit() ends it, so that all
// the submissions and chunks of a turn of the daemon's loop share one fsync (group commit).
// Reads never touch the disk: the records live in an InMemoryJobStore in front of it, filled
// from the file when it is opened.
//
// A write the disk refuses (full, I/O error) is not lost: the store remembers which jobs'
// rows are unsaved, rolls the transaction back and writes them again from the records at the
// next Commit(), until the disk takes them. Meanwhile Insert() refuses new jobs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <string_view>

#include "common/clock.h"
#include "common/result.h"
#include "host/jobs/in_memory_job_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace wafer::host {

struct SqliteStoreOptions {
  std::string path;
  // true: every Commit() reaches the disk (fsync) before it returns: an accepted job survives a
  // power cut. false: it reaches the operating system: a crash of waferd loses nothing, a crash
  // of the host may lose the last commits.
  bool fsync = true;
  // Tests only: caps the file at this many pages, to make a full disk. 0: no cap.
  uint32_t max_page_count = 0;
};

// Not thread-safe; see JobStore.
class SqliteJobStore final : public JobStore {
 public:
  // The schema version this build writes; an older file is migrated when opened.
  static constexpr int kSchemaVersion = 1;

  // Opens the file, creating it (not its folder) on first use, and reads every job and model
  // load it holds. Every refusal names the file in `detail`.
  // Returns:
  //   UNAVAILABLE         - it cannot be opened or created, or another waferd holds it.
  //   DATA_LOSS           - it is not a job store (not SQLite, corrupt, tables missing).
  //   FAILED_PRECONDITION - a newer waferd wrote it (its schema version is above ours).
  static Result<std::unique_ptr<SqliteJobStore>> Open(const SqliteStoreOptions& options,
                                                     const Clock& clock, std::string* detail);
  ~SqliteJobStore() override;

  uint64_t instance_id() const override { return cache_.instance_id(); }
  Status Insert(std::unique_ptr<JobRecord> job) override;
  JobRecord* Find(uint64_t id) override { return cache_.Find(id); }
  Status ChunkAppended(const JobRecord& job, size_t chunk_index) override;
  Status Finished(const JobRecord& job) override;
  Status Erase(uint64_t id) override;
  void ForEach(const std::function<void(JobRecord&)>& fn) override { cache_.ForEach(fn); }
  size_t size() const override { return cache_.size(); }
  bool dirty() const override { return in_transaction_ || stalled_; }
  Status Commit() override;
  std::string Describe() const override;
  Status ModelLoaded(const StoredModelLoad& load) override;
  Status ModelRemoved(const std::string& name) override;
  std::vector<StoredModelLoad> LoadedModels() const override { return cache_.LoadedModels(); }

 private:
  SqliteJobStore(const SqliteStoreOptions& options, const Clock& clock, sqlite3* db,
                 uint64_t instance_id);

  // Reads every job and model load into the cache. DATA_LOSS for rows that do not add up.
  Status ReadAll(std::string* detail);
  // Runs `write` inside the open transaction (beginning one if needed). On failure the
  // transaction is rolled back and the store stalls: RESOURCE_EXHAUSTED (disk full) or
  // UNAVAILABLE.
  Status Write(const std::function<bool()>& write);
  // Prepared once, finalized by the destructor.
  sqlite3_stmt* Statement(const char* sql);
  // The job's whole row and chunks (a replay after a rollback), or its removal when the store
  // no longer holds it.
  bool WriteJob(uint64_t id);
  bool WriteChunk(const JobRecord& job, size_t index);
  bool WriteModel(const std::string& name);
  bool Exec(const char* sql);
  void Fail(int rc, const char* what);
  void Rollback();

  const SqliteStoreOptions options_;
  const Clock& clock_;
  sqlite3* db_ = nullptr;
  std::map<std::string_view, sqlite3_stmt*> statements_;  // Keyed by SQL string literals.
  InMemoryJobStore cache_;
  bool in_transaction_ = false;
  // A write failed: the transaction was rolled back and the rows of `unsaved_jobs_` and
  // `unsaved_models_` are written again, whole, from the records by the next Commit().
  bool stalled_ = false;
  bool disk_full_ = false;
  std::set<uint64_t> unsaved_jobs_;  // Touched since the last successful commit.
  std::set<std::string> unsaved_models_;
  std::string failure_;  // The last failure, for Describe().
};

}  // namespace wafer::host

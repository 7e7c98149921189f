// The durable JobStore: every accepted job, its chunks, its ending and the model loads, in one
// SQLite file in WAL mode. Writes go into one open transaction; Commit() ends it (the WAL gets
// the pages, no fsync), so the caller's loop never waits for the disk. A syncer thread then
// fsyncs the WAL, as often as the disk allows, each fsync covering every commit before it
// (group commit across turns of the loop), and signals durable_event_fd(). Reads never touch
// the disk: the records live in an InMemoryJobStore in front of it, filled from the file when
// it is opened.
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
#include "common/error.h"
#include "common/result.h"
#include "host/jobs/file_syncer.h"
#include "host/jobs/in_memory_job_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace wafer::host {

struct SqliteStoreOptions {
  std::string path;
  // true: commits are fsync'd by the syncer thread and durable() follows the fsyncs: an
  // acknowledged job survives a power cut. false: a commit counts as durable once the operating
  // system has it: a crash of waferd loses nothing, a crash of the host may lose the last ones.
  bool fsync = true;
  // Tests only: caps the file at this many pages, to make a full disk. 0: no cap.
  uint32_t max_page_count = 0;
};

// Not thread-safe; see JobStore.
class SqliteJobStore final : public JobStore {
 public:
  // The schema version this build writes; an older file is migrated when opened.
  static constexpr int kSchemaVersion = 4;

  // Opens the file, creating it (not its folder) on first use, and reads every job and model
  // load it holds. Every refusal's message names the file.
  // Returns:
  //   UNAVAILABLE         - it cannot be opened or created, or another waferd holds it.
  //   DATA_LOSS           - it is not a job store (not SQLite, corrupt, tables missing).
  //   FAILED_PRECONDITION - a newer waferd wrote it (its schema version is above ours).
  static HostResult<std::unique_ptr<SqliteJobStore>> Open(const SqliteStoreOptions& options,
                                                          const Clock& clock);
  ~SqliteJobStore() override;

  uint64_t instance_id() const override { return cache_.instance_id(); }
  Status Insert(std::unique_ptr<JobRecord> job) override;
  JobRecord* Find(uint64_t id) override { return cache_.Find(id); }
  Status ChunkAppended(const JobRecord& job, size_t chunk_index) override;
  Status Finished(const JobRecord& job) override;
  Status CancelRequested(const JobRecord& job) override;
  Status Erase(uint64_t id) override;
  void ForEach(const std::function<void(JobRecord&)>& fn) override { cache_.ForEach(fn); }
  size_t size() const override { return cache_.size(); }
  bool dirty() const override { return in_transaction_ || stalled_; }
  Status Commit() override;
  uint64_t written() const override { return written_; }
  uint64_t durable() const override;
  int durable_event_fd() const override { return syncer_ ? syncer_->event_fd() : -1; }
  std::string Describe() const override;
  JobStoreStats stats() const override;
  Status ModelLoaded(const StoredModelLoad& load) override;
  Status ModelRemoved(const std::string& name) override;
  Status ModelReplicaRemoved(const std::string& name,
                             const std::vector<uint32_t>& boards) override;
  Status BoardStateChanged(const StoredBoardState& state) override;
  std::vector<StoredBoardState> BoardStates() const override { return cache_.BoardStates(); }
  std::vector<StoredModelLoad> LoadedModels() const override { return cache_.LoadedModels(); }

 private:
  SqliteJobStore(const SqliteStoreOptions& options, const Clock& clock, sqlite3* db,
                 uint64_t instance_id);
  // Starts the syncer on the WAL file (options_.fsync only). UNAVAILABLE when it cannot.
  HostStatus StartSyncer();
  bool sync_failed() const;

  // Reads every job and model load into the cache. DATA_LOSS for rows that do not add up.
  HostStatus ReadAll();
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
  bool WriteBoard(uint32_t board);
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
  std::set<uint32_t> unsaved_boards_;
  std::string failure_;  // The last failure, for Describe().
  uint64_t written_ = 0;

  uint64_t commits_ = 0;
  uint64_t write_failures_ = 0;
  // Fsyncs the WAL behind the loop (options_.fsync only; nullptr otherwise).
  std::unique_ptr<FileSyncer> syncer_;
};

}  // namespace wafer::host

#include "host/jobs/sqlite_job_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "host/jobs/job_table.h"

namespace wafer::host {
namespace {

constexpr uint64_t kNoByteLimit = UINT64_MAX;

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  SqliteJobStoreTest() : clock_(5'000'000'000) {
    char pattern[] = "/tmp/wafer-store-XXXXXX";
    dir_ = mkdtemp(pattern);
    path_ = dir_ + "/jobs.db";
  }
  ~SqliteJobStoreTest() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteJobStore> Open(uint32_t max_page_count = 0) {
    HostResult<std::unique_ptr<SqliteJobStore>> store =
        SqliteJobStore::Open(SqliteStoreOptions{path_, false, max_page_count}, clock_);
    EXPECT_TRUE(store.ok()) << store.error().ToString();
    return store.ok() ? std::move(store.value()) : nullptr;
  }
  // The Error opening the store returns (code OK, no message, if it opened).
  Error OpenError() {
    HostResult<std::unique_ptr<SqliteJobStore>> store =
        SqliteJobStore::Open(SqliteStoreOptions{path_, false, 0}, clock_);
    return store.ok() ? Error{StatusCode::kOk, {}} : std::move(store).error();
  }

  static std::unique_ptr<JobRecord> Request(const std::string& key, size_t prompt_tokens = 3) {
    auto job = std::make_unique<JobRecord>();
    job->model = "m";
    job->tenant = "t";
    job->idempotency_key = key;
    job->request_digest = "digest-" + key;
    job->priority = 9;
    for (size_t i = 0; i < prompt_tokens; ++i) job->prompt.push_back(static_cast<uint32_t>(i));
    job->prefill = job->prompt;
    job->max_tokens = 16;
    job->sampling = Sampling{0.5f, 40, 0.9f, 0xfeedfacecafebeefull};
    job->stop_tokens = {2, 4};
    job->deadline_unix_ms = UINT64_MAX;
    job->ttft_target_ms = 250;
    job->accepted_unix_ms = 1'700'000'000'000;
    return job;
  }

  FakeClock clock_;
  std::string dir_;
  std::string path_;
};

TEST_F(SqliteJobStoreTest, JobsChunksEndingsAndModelsSurviveAReopen) {
  uint64_t instance = 0, queued = 0, running = 0, done = 0;
  {
    std::unique_ptr<SqliteJobStore> store = Open();
    ASSERT_NE(store, nullptr);
    instance = store->instance_id();
    JobTable table(*store, 10, kNoByteLimit);
    JobRecord& waiting = *table.Add(Request("a")).value();
    queued = waiting.id;
    table.RequestCancel(waiting, FinishReason::kAbandoned);  // Ends when its Step returns.
    JobRecord& run = *table.Add(Request("b")).value();
    running = run.id;
    JobRecord& fin = *table.Add(Request("c")).value();
    done = fin.id;
    const std::vector<uint32_t> first = {10, 11}, second = {12};
    ASSERT_TRUE(table.AppendChunk(run, first, "ab").ok());
    ASSERT_TRUE(table.AppendChunk(run, second, "c").ok());
    ASSERT_TRUE(table.AppendChunk(fin, second, "z").ok());
    table.Finish(fin, FinishReason::kStopToken, ErrorCode::kNone, "", 7'000'000'000);
    ASSERT_TRUE(store->ModelLoaded(StoredModelLoad{"m", "/models/m", {1, 0}, 8, 512}).ok());
    EXPECT_TRUE(store->dirty());
    ASSERT_TRUE(store->Commit().ok());
    EXPECT_FALSE(store->dirty());
  }
  std::unique_ptr<SqliteJobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->instance_id(), instance);
  std::vector<uint64_t> order;
  store->ForEach([&](JobRecord& job) { order.push_back(job.id); });
  EXPECT_EQ(order, (std::vector<uint64_t>{queued, running, done}));

  const JobRecord& run = *store->Find(running);
  EXPECT_EQ(run.tenant, "t");
  EXPECT_EQ(run.idempotency_key, "b");
  EXPECT_EQ(run.request_digest, "digest-b");
  EXPECT_EQ(run.priority, 9);
  EXPECT_EQ(run.prompt, (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(run.stop_tokens, (std::vector<uint32_t>{2, 4}));
  EXPECT_EQ(run.sampling.seed, 0xfeedfacecafebeefull);
  EXPECT_FLOAT_EQ(run.sampling.top_p, 0.9f);
  EXPECT_EQ(run.deadline_unix_ms, UINT64_MAX);
  EXPECT_EQ(run.ttft_target_ms, 250u);
  EXPECT_EQ(run.output, (std::vector<uint32_t>{10, 11, 12}));
  EXPECT_EQ(run.chunk_starts, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(run.chunk_texts, (std::vector<std::string>{"ab", "c"}));
  EXPECT_FALSE(run.finished.has_value());
  EXPECT_FALSE(run.cancel_requested);
  // A cancel asked before the crash is still asked: the job must not run again.
  EXPECT_TRUE(store->Find(queued)->cancel_requested);
  EXPECT_EQ(store->Find(queued)->cancel_reason, FinishReason::kAbandoned);

  const JobRecord& fin = *store->Find(done);
  ASSERT_TRUE(fin.finished.has_value());
  EXPECT_EQ(fin.finished->reason, FinishReason::kStopToken);
  EXPECT_EQ(fin.finished->prompt_tokens, 3u);
  EXPECT_EQ(fin.finished->completion_tokens, 1u);
  EXPECT_EQ(fin.finished->chunks, 1u);
  EXPECT_TRUE(fin.prompt.empty());  // A finished job keeps what a resume needs.

  ASSERT_EQ(store->LoadedModels().size(), 1u);
  EXPECT_EQ(store->LoadedModels()[0], (StoredModelLoad{"m", "/models/m", {1, 0}, 8, 512}));

  // A table over the reopened store continues the acceptance order and finds keys.
  JobTable table(*store, 10, kNoByteLimit);
  EXPECT_EQ(table.FindByKey("t", "a")->id, queued);
  EXPECT_EQ(table.Add(Request("d")).value()->accept_seq, 4u);
}

TEST_F(SqliteJobStoreTest, CommitsBecomeDurableInGenerationsSignalledOnTheEventFd) {
  auto opened = SqliteJobStore::Open(SqliteStoreOptions{path_, true, 0}, clock_);
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  SqliteJobStore& store = **opened;
  ASSERT_GE(store.durable_event_fd(), 0);
  JobTable table(store, 10, kNoByteLimit);
  EXPECT_EQ(store.written(), 0u);
  ASSERT_TRUE(store.Commit().ok());  // Nothing to commit: no new generation.
  EXPECT_EQ(store.written(), 0u);
  for (int round = 1; round <= 3; ++round) {
    table.Add(Request("k" + std::to_string(round))).value();
    EXPECT_TRUE(store.dirty());
    ASSERT_TRUE(store.Commit().ok());
    EXPECT_FALSE(store.dirty());
    EXPECT_EQ(store.written(), static_cast<uint64_t>(round));
    // The syncer's fsync moves durable() up to the commit and says so on the eventfd.
    while (store.durable() < store.written()) {
      pollfd p{store.durable_event_fd(), POLLIN, 0};
      ASSERT_EQ(poll(&p, 1, 10000), 1) << "the syncer never signalled";
      uint64_t value;
      ASSERT_EQ(read(store.durable_event_fd(), &value, sizeof(value)),
                static_cast<ssize_t>(sizeof(value)));
    }
    EXPECT_EQ(store.durable(), store.written());
  }
}

TEST_F(SqliteJobStoreTest, OnlyCommittedWritesSurviveAProcessThatDies) {
  // The child accepts two jobs, commits after the first only, then dies without cleanup (as a
  // kill -9 would leave it): the second was never acknowledged, and is not there.
  uint64_t ids[2] = {0, 0};
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = SqliteJobStore::Open(SqliteStoreOptions{path_, true, 0}, clock_);
    if (!store.ok()) _exit(3);
    JobTable table(**store, 10, kNoByteLimit);
    ids[0] = table.Add(Request("one")).value()->id;
    if (!(*store)->Commit().ok()) _exit(4);
    ids[1] = table.Add(Request("two")).value()->id;
    if (write(pipe_fds[1], ids, sizeof(ids)) != sizeof(ids)) _exit(5);
    _exit(0);
  }
  close(pipe_fds[1]);
  ASSERT_EQ(read(pipe_fds[0], ids, sizeof(ids)), static_cast<ssize_t>(sizeof(ids)));
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  std::unique_ptr<SqliteJobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_NE(store->Find(ids[0]), nullptr);
  EXPECT_EQ(store->Find(ids[1]), nullptr);
  EXPECT_EQ(store->size(), 1u);
}

TEST_F(SqliteJobStoreTest, AFileThatIsNotAStoreIsDataLossNamingIt) {
  std::ofstream(path_) << std::string(8192, 'x');
  const Error error = OpenError();
  const std::string& detail = error.message;
  EXPECT_EQ(error.code, StatusCode::kDataLoss);
  EXPECT_NE(detail.find(path_), std::string::npos) << detail;
}

TEST_F(SqliteJobStoreTest, AnotherProgramsDatabaseIsDataLoss) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE invoices(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const Error error = OpenError();
  const std::string& detail = error.message;
  EXPECT_EQ(error.code, StatusCode::kDataLoss);
  EXPECT_NE(detail.find("not a waferd job store"), std::string::npos) << detail;
}

TEST_F(SqliteJobStoreTest, AStoreFromANewerWaferdIsRefused) {
  { ASSERT_NE(Open(), nullptr); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const Error error = OpenError();
  const std::string& detail = error.message;
  EXPECT_EQ(error.code, StatusCode::kFailedPrecondition);
  EXPECT_NE(detail.find("newer waferd"), std::string::npos) << detail;
  EXPECT_NE(detail.find(path_), std::string::npos) << detail;
}

TEST_F(SqliteJobStoreTest, AVersionOneStoreIsMigratedWithItsJobs) {
  uint64_t id = 0, instance = 0;
  {
    std::unique_ptr<SqliteJobStore> store = Open();
    ASSERT_NE(store, nullptr);
    instance = store->instance_id();
    JobTable table(*store, 10, kNoByteLimit);
    id = table.Add(Request("a")).value()->id;
    ASSERT_TRUE(store->Commit().ok());
  }
  // Back to version 1 as an older waferd left it: no TTFT target column.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  // Its models table had one row per name.
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE jobs DROP COLUMN ttft_target_ms; DROP TABLE models;"
                         "CREATE TABLE models(name TEXT PRIMARY KEY, path TEXT NOT NULL, "
                         "boards TEXT NOT NULL, slots INTEGER NOT NULL, "
                         "context_length INTEGER NOT NULL);"
                         "INSERT INTO models VALUES('m', '/models/m', '1,0', 8, 512);"
                         "DROP TABLE boards;"  // Version 4's.
                         "PRAGMA user_version = 1",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  std::unique_ptr<SqliteJobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->instance_id(), instance);
  ASSERT_NE(store->Find(id), nullptr);
  EXPECT_EQ(store->Find(id)->prompt, (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(store->Find(id)->ttft_target_ms, 0u);  // Unknown to version 1.
  ASSERT_EQ(store->LoadedModels().size(), 1u);
  EXPECT_EQ(store->LoadedModels()[0], (StoredModelLoad{"m", "/models/m", {1, 0}, 8, 512}));
  // The migrated file holds several replicas of a name.
  ASSERT_TRUE(store->ModelLoaded(StoredModelLoad{"m", "/models/m", {2}, 8, 512}).ok());
  // The migrated file takes new jobs with their targets.
  JobTable table(*store, 10, kNoByteLimit);
  const uint64_t added = table.Add(Request("b")).value()->id;
  ASSERT_TRUE(store->Commit().ok());
  store.reset();
  db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), SqliteJobStore::kSchemaVersion);
  sqlite3_finalize(s);
  sqlite3_close(db);
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Find(added)->ttft_target_ms, 250u);
  EXPECT_EQ(store->LoadedModels().size(), 2u);
}

TEST_F(SqliteJobStoreTest, EveryReplicaOfAModelSurvivesAReopenAndGoesWithIt) {
  const StoredModelLoad first{"m", "/models/m", {0}, 8, 512};
  const StoredModelLoad second{"m", "/models/m", {2, 1}, 4, 256};
  const StoredModelLoad other{"n", "/models/n", {1}, 8, 512};
  {
    std::unique_ptr<SqliteJobStore> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->ModelLoaded(first).ok());
    ASSERT_TRUE(store->ModelLoaded(second).ok());
    ASSERT_TRUE(store->ModelLoaded(other).ok());
    // The same name on the same boards again (a reload) replaces its row.
    ASSERT_TRUE(store->ModelLoaded(first).ok());
    ASSERT_TRUE(store->Commit().ok());
  }
  {
    std::unique_ptr<SqliteJobStore> store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->LoadedModels(), (std::vector<StoredModelLoad>{first, second, other}));
    ASSERT_TRUE(store->ModelRemoved("m").ok());  // Every replica of m.
    EXPECT_EQ(store->ModelRemoved("m").code(), StatusCode::kNotFound);
    ASSERT_TRUE(store->Commit().ok());
  }
  std::unique_ptr<SqliteJobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LoadedModels(), std::vector<StoredModelLoad>{other});
}

TEST_F(SqliteJobStoreTest, OneReplicaGoesAndTheOthersStayAcrossAReopen) {
  const StoredModelLoad first{"m", "/models/m", {0}, 8, 512};
  const StoredModelLoad second{"m", "/models/m", {2, 1}, 4, 256};
  {
    std::unique_ptr<SqliteJobStore> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->ModelLoaded(first).ok());
    ASSERT_TRUE(store->ModelLoaded(second).ok());
    ASSERT_TRUE(store->ModelReplicaRemoved("m", {2, 1}).ok());
    EXPECT_EQ(store->ModelReplicaRemoved("m", {2, 1}).code(), StatusCode::kNotFound);
    EXPECT_EQ(store->ModelReplicaRemoved("m", {1, 2}).code(), StatusCode::kNotFound);
    ASSERT_TRUE(store->Commit().ok());
  }
  std::unique_ptr<SqliteJobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LoadedModels(), std::vector<StoredModelLoad>{first});
}

TEST_F(SqliteJobStoreTest, BoardDrainsAndIncidentsSurviveAReopenAndAnEmptyStateRemovesTheRow) {
  StoredBoardState quarantined;
  quarantined.board = 1;
  quarantined.incident_id = 7;
  quarantined.incident_code = 131;
  quarantined.incident_message = "ecc_uncorrectable: 1 uncorrectable ECC errors";
  quarantined.incident_state = "quarantined";
  quarantined.incident_opened_unix_ms = 1'700'000'000'000;
  quarantined.incident_recoveries = 3;
  quarantined.incident_last_action = "quarantined after 3 failed resets";
  StoredBoardState drained;
  drained.board = 0;
  drained.operator_drain = 2;
  {
    std::unique_ptr<SqliteJobStore> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->BoardStateChanged(quarantined).ok());
    ASSERT_TRUE(store->BoardStateChanged(drained).ok());
    ASSERT_TRUE(store->Commit().ok());
  }
  {
    std::unique_ptr<SqliteJobStore> store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->BoardStates(), (std::vector<StoredBoardState>{drained, quarantined}));
    StoredBoardState undrained;
    undrained.board = 0;
    ASSERT_TRUE(store->BoardStateChanged(undrained).ok());
    ASSERT_TRUE(store->Commit().ok());
  }
  std::unique_ptr<SqliteJobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->BoardStates(), std::vector<StoredBoardState>{quarantined});
}

TEST_F(SqliteJobStoreTest, ASecondDaemonOnTheSameStoreIsRefused) {
  std::unique_ptr<SqliteJobStore> first = Open();
  ASSERT_NE(first, nullptr);
  const Error error = OpenError();
  const std::string& detail = error.message;
  EXPECT_EQ(error.code, StatusCode::kUnavailable);
  EXPECT_NE(detail.find("in use"), std::string::npos) << detail;
}

TEST_F(SqliteJobStoreTest, TornRowsAreDataLoss) {
  {
    std::unique_ptr<SqliteJobStore> store = Open();
    JobTable table(*store, 10, kNoByteLimit);
    JobRecord& job = *table.Add(Request("a")).value();
    const std::vector<uint32_t> tokens = {1};
    ASSERT_TRUE(table.AppendChunk(job, tokens, "").ok());
    ASSERT_TRUE(table.AppendChunk(job, tokens, "").ok());
    ASSERT_TRUE(store->Commit().ok());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DELETE FROM chunks WHERE seq = 0", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const Error error = OpenError();
  const std::string& detail = error.message;
  EXPECT_EQ(error.code, StatusCode::kDataLoss);
  EXPECT_NE(detail.find("does not follow"), std::string::npos) << detail;
}

// Damage that the fuzzer found aborting or overflowing the reader (tests/fuzz/job_store_fuzz):
// a model row whose board list is not numbers, and a job accepted at an impossible time.
TEST_F(SqliteJobStoreTest, DamagedBoardListsAndAcceptanceTimesAreDataLoss) {
  struct Case {
    const char* sql;
    const char* expect;
  };
  const Case cases[] = {
      {"INSERT INTO models VALUES('m', '/m', '1,,0', 8, 512)", "board list"},
      {"INSERT INTO models VALUES('m', '/m', '99999999999', 8, 512)", "board list"},
      {"UPDATE jobs SET accepted_unix_ms = -9000000000000000000", "acceptance time"},
  };
  for (const Case& c : cases) {
    std::filesystem::remove(path_);
    {
      std::unique_ptr<SqliteJobStore> store = Open();
      JobTable table(*store, 10, kNoByteLimit);
      ASSERT_TRUE(table.Add(Request("a")).ok());
      ASSERT_TRUE(store->Commit().ok());
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, c.sql, nullptr, nullptr, nullptr), SQLITE_OK) << c.sql;
    sqlite3_close(db);
    const Error error = OpenError();
    const std::string& detail = error.message;
    EXPECT_EQ(error.code, StatusCode::kDataLoss) << c.sql;
    EXPECT_NE(detail.find(c.expect), std::string::npos) << detail;
  }
}

TEST_F(SqliteJobStoreTest, AFullDiskRefusesNewJobsAndKeepsTheAcceptedOnes) {
  std::vector<uint64_t> accepted;
  Status refused;
  {
    // About 40 KB of store; each job carries a 4 KB prompt.
    std::unique_ptr<SqliteJobStore> store = Open(/*max_page_count=*/24);
    ASSERT_NE(store, nullptr);
    // Retention 1: finishing a job forgets (erases) the one that finished before it.
    JobTable table(*store, 1, kNoByteLimit);
    for (int i = 0; i < 100; ++i) {
      Result<JobRecord*> added = table.Add(Request("k" + std::to_string(i), 1000));
      if (!added.ok()) {
        refused = added.status();
        break;
      }
      accepted.push_back(added.value()->id);
      ASSERT_TRUE(store->Commit().ok()) << store->Describe();
    }
    ASSERT_EQ(refused.code(), StatusCode::kResourceExhausted);
    ASSERT_GE(accepted.size(), 3u);
    EXPECT_NE(store->Describe().find(path_), std::string::npos) << store->Describe();
    EXPECT_NE(store->Describe().find("disk full"), std::string::npos) << store->Describe();
    // The accepted jobs are written again whole, without the refused one: the disk takes them.
    EXPECT_TRUE(store->Commit().ok()) << store->Describe();
    EXPECT_EQ(table.FindByKey("t", "k" + std::to_string(accepted.size())), nullptr);

    // A chunk of an accepted job that does not fit (6 KB, less than 4 KB free) is kept, waits,
    // and is written once room is made; meanwhile new jobs are refused.
    JobRecord& first = *store->Find(accepted[0]);
    const std::vector<uint32_t> big(1500, 5);
    ASSERT_TRUE(table.AppendChunk(first, big, "").ok());
    ASSERT_FALSE(store->Commit().ok());
    EXPECT_TRUE(store->dirty());
    EXPECT_EQ(table.Add(Request("late")).status().code(), StatusCode::kResourceExhausted);
    for (size_t i = 1; i < accepted.size(); ++i) {
      table.Finish(*store->Find(accepted[i]), FinishReason::kCancelled, ErrorCode::kNone, "", 1);
    }
    ASSERT_TRUE(store->Commit().ok()) << store->Describe();
    EXPECT_FALSE(store->dirty());
  }
  std::unique_ptr<SqliteJobStore> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->size(), 2u);  // The first, and the last finished (retention 1).
  EXPECT_EQ(store->Find(accepted[0])->output.size(), 1500u);
  ASSERT_NE(store->Find(accepted.back()), nullptr);
  EXPECT_TRUE(store->Find(accepted.back())->finished.has_value());
}

}  // namespace
}  // namespace wafer::host

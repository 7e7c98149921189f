#include "host/jobs/sqlite_job_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <iterator>

#include "common/log/log.h"

namespace wafer::host {
namespace {

static_assert(std::endian::native == std::endian::little,
              "token blobs are stored as little-endian uint32 arrays");

// Version 1. A new file is made at version 1 and migrated up like an old one (kMigrations), so
// every migration runs on every new store.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY,
  accept_seq INTEGER NOT NULL,
  model TEXT NOT NULL,
  tenant TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  request_digest BLOB NOT NULL,
  priority INTEGER NOT NULL,
  prompt BLOB,
  prompt_tokens INTEGER NOT NULL,
  max_tokens INTEGER NOT NULL,
  temperature REAL NOT NULL,
  top_k INTEGER NOT NULL,
  top_p REAL NOT NULL,
  seed INTEGER NOT NULL,
  stop_tokens BLOB,
  want_text INTEGER NOT NULL,
  deadline_unix_ms INTEGER NOT NULL,
  accepted_unix_ms INTEGER NOT NULL,
  finish_reason INTEGER,
  error_code INTEGER,
  detail TEXT,
  queued_ns INTEGER,
  ttft_ns INTEGER,
  total_ns INTEGER,
  device_ns INTEGER,
  cancel_reason INTEGER);
CREATE TABLE chunks(
  job_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  first_token INTEGER NOT NULL,
  tokens BLOB NOT NULL,
  text TEXT NOT NULL,
  PRIMARY KEY(job_id, seq)) WITHOUT ROWID;
CREATE TABLE models(
  name TEXT PRIMARY KEY,
  path TEXT NOT NULL,
  boards TEXT NOT NULL,
  slots INTEGER NOT NULL,
  context_length INTEGER NOT NULL);
)sql";

// kMigrations[v - 1] takes a store from version v to v + 1.
constexpr const char* kMigrations[] = {
    // 2: a job's TTFT target (it orders the job within its tenant after a restart as before).
    "ALTER TABLE jobs ADD COLUMN ttft_target_ms INTEGER NOT NULL DEFAULT 0;",
    // 3: a model loaded as several replicas keeps one row per replica (name and boards).
    "CREATE TABLE models_v3(name TEXT NOT NULL, path TEXT NOT NULL, boards TEXT NOT NULL, "
    "slots INTEGER NOT NULL, context_length INTEGER NOT NULL, PRIMARY KEY(name, boards));"
    "INSERT INTO models_v3 SELECT name, path, boards, slots, context_length FROM models;"
    "DROP TABLE models;"
    "ALTER TABLE models_v3 RENAME TO models;",
    // 4: each board's operator drain and open health incident survive a restart.
    "CREATE TABLE boards(board INTEGER PRIMARY KEY, operator_drain INTEGER NOT NULL, "
    "incident_id INTEGER NOT NULL, incident_code INTEGER NOT NULL, incident_message TEXT NOT NULL, "
    "incident_state TEXT NOT NULL, incident_opened_unix_ms INTEGER NOT NULL, "
    "incident_recoveries INTEGER NOT NULL, incident_last_action TEXT NOT NULL);",
};
static_assert(std::size(kMigrations) + 1 == SqliteJobStore::kSchemaVersion);

// Writes that a Commit() may stall on.
constexpr const char* kInsertJob =
    "INSERT OR REPLACE INTO jobs VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
    "?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)";
constexpr const char* kCancelJob = "UPDATE jobs SET cancel_reason = ?2 WHERE id = ?1";
constexpr const char* kInsertChunk = "INSERT OR REPLACE INTO chunks VALUES(?1, ?2, ?3, ?4, ?5)";
constexpr const char* kFinishJob =
    "UPDATE jobs SET prompt = NULL, stop_tokens = NULL, finish_reason = ?2, error_code = ?3, "
    "detail = ?4, queued_ns = ?5, ttft_ns = ?6, total_ns = ?7, device_ns = ?8 WHERE id = ?1";
constexpr const char* kDeleteJob = "DELETE FROM jobs WHERE id = ?1";
constexpr const char* kDeleteChunks = "DELETE FROM chunks WHERE job_id = ?1";
constexpr const char* kInsertModel = "INSERT OR REPLACE INTO models VALUES(?1, ?2, ?3, ?4, ?5)";
constexpr const char* kDeleteModel = "DELETE FROM models WHERE name = ?1";
constexpr const char* kInsertBoard =
    "INSERT OR REPLACE INTO boards VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr const char* kDeleteBoard = "DELETE FROM boards WHERE board = ?1";

// Job ids are unsigned 64-bit; SQLite integers are signed. Stored bit for bit.
int64_t AsSql(uint64_t v) { return std::bit_cast<int64_t>(v); }
uint64_t FromSql(int64_t v) { return std::bit_cast<uint64_t>(v); }

void BindTokens(sqlite3_stmt* s, int index, const uint32_t* data, size_t count) {
  sqlite3_bind_blob64(s, index, data, count * sizeof(uint32_t), SQLITE_TRANSIENT);
}

// A column of uint32 tokens; false when its length is not a whole number of them.
bool ColumnTokens(sqlite3_stmt* s, int column, std::vector<uint32_t>* out) {
  const int bytes = sqlite3_column_bytes(s, column);
  if (bytes % sizeof(uint32_t) != 0) return false;
  out->resize(bytes / sizeof(uint32_t));
  if (bytes > 0) std::memcpy(out->data(), sqlite3_column_blob(s, column), bytes);
  return true;
}

std::string ColumnText(sqlite3_stmt* s, int column) {
  const unsigned char* text = sqlite3_column_text(s, column);
  return text == nullptr ? std::string()
                         : std::string(reinterpret_cast<const char*>(text),
                                       sqlite3_column_bytes(s, column));
}

void BindText(sqlite3_stmt* s, int index, const std::string& text) {
  sqlite3_bind_text64(s, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

// A job's ending, in the seven columns from finish_reason to device_ns, from `first` on.
void BindEnding(sqlite3_stmt* s, int first, const JobFinished& f) {
  sqlite3_bind_int(s, first, static_cast<int>(f.reason));
  sqlite3_bind_int(s, first + 1, static_cast<int>(f.error_code));
  BindText(s, first + 2, f.detail);
  sqlite3_bind_int64(s, first + 3, f.timings.queued_ns);
  sqlite3_bind_int64(s, first + 4, f.timings.ttft_ns);
  sqlite3_bind_int64(s, first + 5, f.timings.total_ns);
  sqlite3_bind_int64(s, first + 6, f.timings.device_ns);
}

std::string BoardsText(const std::vector<uint32_t>& boards) {
  std::string text;
  for (uint32_t b : boards) text += (text.empty() ? "" : ",") + std::to_string(b);
  return text;
}

// The inverse of BoardsText; false unless `text` is board numbers (each fits uint32) joined by
// commas. (It was std::stoul, which throws on a damaged row: the fuzzer's first finding.)
bool ParseBoardsText(std::string_view text, std::vector<uint32_t>* boards) {
  for (size_t at = 0; at < text.size();) {
    const size_t comma = std::min(text.find(',', at), text.size());
    uint32_t board = 0;
    const char* first = text.data() + at;
    const char* last = text.data() + comma;
    const auto [end, error] = std::from_chars(first, last, board);
    if (first == last || error != std::errc() || end != last) return false;
    boards->push_back(board);
    at = comma + 1;
  }
  return true;
}

// Runs one statement of `sql` at a time. UNAVAILABLE, with SQLite's message after `path`, when
// one fails.
HostStatus ExecAll(sqlite3* db, const char* sql, const std::string& path) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) == SQLITE_OK) return HostOk();
  Error error{StatusCode::kUnavailable,
              path + ": " + (message != nullptr ? message : sqlite3_errmsg(db))};
  sqlite3_free(message);
  return error;
}

// `error`, a failure opening or reading `db`, with the code (and, when another process holds
// the file or it is not a database, the message) that SQLite's last error calls for.
Error OpenFailure(sqlite3* db, const std::string& path, Error error) {
  switch (sqlite3_errcode(db) & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error{StatusCode::kUnavailable,
                   path + ": the job store is in use by another process (another waferd?)"};
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_FORMAT:
      return Error{StatusCode::kDataLoss, path + ": not a readable job store (" +
                                              sqlite3_errmsg(db) +
                                              "); move it aside to start with an empty one"};
    default:
      error.code = StatusCode::kUnavailable;
      return error;
  }
}

// Creates the schema of a new file, migrates an older one, and returns the instance id.
HostResult<uint64_t> PrepareSchema(sqlite3* db, const std::string& path) {
  int64_t version = -1;
  int64_t tables = -1;
  {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      version = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema", -1, &s, nullptr) ==
            SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      tables = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
  }
  if (version < 0 || tables < 0) {
    return OpenFailure(db, path,
                       Error{StatusCode::kUnavailable,
                             path + ": not a readable job store: " + sqlite3_errmsg(db)});
  }
  if (version > SqliteJobStore::kSchemaVersion) {
    return Error{StatusCode::kFailedPrecondition,
                 path + ": written by a newer waferd (schema version " + std::to_string(version) +
                     ", this one reads up to " + std::to_string(SqliteJobStore::kSchemaVersion) +
                     ")"};
  }
  if (version == 0) {
    if (tables != 0) {
      return Error{StatusCode::kDataLoss, path +
                                              ": an SQLite file that is not a waferd job store (" +
                                              std::to_string(tables) + " foreign tables)"};
    }
    const uint64_t instance = RandomNonZeroId();
    const std::string create = std::string(kSchemaV1) +
                               "INSERT INTO meta VALUES('instance_id', " +
                               std::to_string(AsSql(instance)) + ");PRAGMA user_version = 1;";
    WAFER_HOST_RETURN_IF_ERROR(ExecAll(db, create.c_str(), path));
    version = 1;
  }
  for (; version < SqliteJobStore::kSchemaVersion; ++version) {
    // Inside Open's transaction, with the creation and every other step: a crash leaves the
    // file as it was.
    const std::string step = std::string(kMigrations[version - 1]) + "PRAGMA user_version = " +
                             std::to_string(version + 1) + ";";
    if (HostStatus migrated = ExecAll(db, step.c_str(), path); !migrated.ok()) {
      Error error = std::move(migrated).error();
      error.message +=
          " (migrating the job store to schema version " + std::to_string(version + 1) + ")";
      return error;
    }
  }
  sqlite3_stmt* s = nullptr;
  int64_t instance = 0;
  if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'instance_id'", -1, &s,
                         nullptr) == SQLITE_OK &&
      sqlite3_step(s) == SQLITE_ROW) {
    instance = sqlite3_column_int64(s, 0);
  }
  sqlite3_finalize(s);
  if (instance == 0) {
    return Error{StatusCode::kDataLoss,
                 path + ": job store without an instance id (damaged): " + sqlite3_errmsg(db)};
  }
  return FromSql(instance);
}

}  // namespace

HostResult<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const SqliteStoreOptions& options,
                                                                 const Clock& clock) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(options.path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    Error error{StatusCode::kUnavailable,
                options.path + ": cannot open the job store: " +
                    (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc))};
    sqlite3_close(db);
    return error;
  }
  auto fail = [&](Error error) {
    sqlite3_close(db);
    return error;
  };
  // Exclusive locking: one waferd per store (a second one is refused, not interleaved), and
  // WAL without a shared-memory file. Synchronous NORMAL: a commit is not fsync'd by SQLite
  // (the syncer thread does it, off the caller's thread); checkpoints still are.
  const std::string pragmas =
      std::string("PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; ") +
      "PRAGMA synchronous = NORMAL;" +
      (options.max_page_count != 0
           ? "PRAGMA max_page_count = " + std::to_string(options.max_page_count) + ";"
           : std::string());
  for (const char* sql : {pragmas.c_str(), "BEGIN IMMEDIATE"}) {
    if (HostStatus s = ExecAll(db, sql, options.path); !s.ok()) {
      return fail(OpenFailure(db, options.path, std::move(s).error()));
    }
  }
  HostResult<uint64_t> instance = PrepareSchema(db, options.path);
  if (!instance.ok()) return fail(std::move(instance).error());
  if (HostStatus s = ExecAll(db, "COMMIT", options.path); !s.ok()) {
    return fail(OpenFailure(db, options.path, std::move(s).error()));
  }
  {
    // Catches damaged pages now, with the file's name, rather than in the middle of serving.
    sqlite3_stmt* s = nullptr;
    std::string verdict;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      verdict = ColumnText(s, 0);
    }
    sqlite3_finalize(s);
    if (verdict != "ok") {
      return fail(Error{StatusCode::kDataLoss,
                        options.path + ": the job store is damaged: " +
                            (verdict.empty() ? std::string(sqlite3_errmsg(db)) : verdict)});
    }
  }
  std::unique_ptr<SqliteJobStore> store(new SqliteJobStore(options, clock, db, *instance));
  WAFER_HOST_RETURN_IF_ERROR(store->ReadAll());
  WAFER_HOST_RETURN_IF_ERROR(store->StartSyncer());
  return store;
}

HostStatus SqliteJobStore::StartSyncer() {
  if (!options_.fsync) return HostOk();
  // SQLite keeps the WAL file (same inode) while the connection is open: an fdatasync on the
  // syncer's own descriptor flushes what SQLite wrote through its.
  WAFER_HOST_ASSIGN_OR_RETURN(syncer_, FileSyncer::Start(options_.path + "-wal", clock_));
  return HostOk();
}

uint64_t SqliteJobStore::durable() const { return syncer_ ? syncer_->synced() : written_; }

bool SqliteJobStore::sync_failed() const { return syncer_ && syncer_->failed(); }

SqliteJobStore::SqliteJobStore(const SqliteStoreOptions& options, const Clock& clock,
                               sqlite3* db, uint64_t instance_id)
    : options_(options), clock_(clock), db_(db), cache_(instance_id) {}

SqliteJobStore::~SqliteJobStore() {
  // What the last turn wrote is committed and synced; a failure here is what a crash would
  // have lost.
  if (in_transaction_ || stalled_) Commit().IgnoreError();
  syncer_.reset();  // Syncs the last commits.
  for (auto& [sql, statement] : statements_) sqlite3_finalize(statement);
  sqlite3_close(db_);
}

sqlite3_stmt* SqliteJobStore::Statement(const char* sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) {
    sqlite3_reset(it->second);
    sqlite3_clear_bindings(it->second);
    return it->second;
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) {
    return nullptr;
  }
  statements_.emplace(sql, s);
  return s;
}

HostStatus SqliteJobStore::ReadAll() {
  auto damaged = [&](const std::string& what) {
    return Error{StatusCode::kDataLoss, options_.path + ": the job store is damaged: " + what};
  };
  // A recovered job's timings continue on this process's clock.
  const int64_t now_ns = clock_.NowNanos();
  const int64_t now_unix_ms = clock_.UnixMillis();
  sqlite3_stmt* s = Statement("SELECT * FROM jobs ORDER BY accept_seq");
  if (s == nullptr) return damaged(sqlite3_errmsg(db_));
  while (sqlite3_step(s) == SQLITE_ROW) {
    auto job = std::make_unique<JobRecord>();
    job->id = FromSql(sqlite3_column_int64(s, 0));
    job->accept_seq = FromSql(sqlite3_column_int64(s, 1));
    job->model = ColumnText(s, 2);
    job->tenant = ColumnText(s, 3);
    job->idempotency_key = ColumnText(s, 4);
    if (const void* digest = sqlite3_column_blob(s, 5)) {
      job->request_digest.assign(static_cast<const char*>(digest), sqlite3_column_bytes(s, 5));
    }
    job->priority = static_cast<uint8_t>(sqlite3_column_int(s, 6));
    const uint32_t prompt_tokens = static_cast<uint32_t>(sqlite3_column_int64(s, 8));
    job->max_tokens = static_cast<uint32_t>(sqlite3_column_int64(s, 9));
    job->sampling.temperature = static_cast<float>(sqlite3_column_double(s, 10));
    job->sampling.top_k = static_cast<uint32_t>(sqlite3_column_int64(s, 11));
    job->sampling.top_p = static_cast<float>(sqlite3_column_double(s, 12));
    job->sampling.seed = FromSql(sqlite3_column_int64(s, 13));
    job->want_text = sqlite3_column_int(s, 15) != 0;
    job->deadline_unix_ms = FromSql(sqlite3_column_int64(s, 16));
    job->accepted_unix_ms = sqlite3_column_int64(s, 17);
    // A damaged time must not overflow (UBSan under the fuzzer found this): an age beyond
    // int64 nanoseconds, about 292 years, is no acceptance time.
    int64_t age_ms = 0, age_ns = 0;
    if (__builtin_sub_overflow(now_unix_ms, job->accepted_unix_ms, &age_ms) ||
        __builtin_mul_overflow(age_ms, int64_t{1'000'000}, &age_ns) ||
        __builtin_sub_overflow(now_ns, age_ns, &job->accepted_ns)) {
      return damaged("job " + std::to_string(job->id) + " has an impossible acceptance time (" +
                     std::to_string(job->accepted_unix_ms) + " ms since 1970)");
    }
    if (!ColumnTokens(s, 7, &job->prompt) || !ColumnTokens(s, 14, &job->stop_tokens)) {
      return damaged("job " + std::to_string(job->id) + " has a torn token list");
    }
    job->ttft_target_ms = static_cast<uint32_t>(sqlite3_column_int64(s, 26));
    if (sqlite3_column_type(s, 25) != SQLITE_NULL) {
      job->cancel_requested = true;
      job->cancel_reason = static_cast<FinishReason>(sqlite3_column_int(s, 25));
    }
    if (sqlite3_column_type(s, 18) != SQLITE_NULL) {
      JobFinished f;
      f.job_id = job->id;
      f.reason = static_cast<FinishReason>(sqlite3_column_int(s, 18));
      f.error_code = static_cast<ErrorCode>(sqlite3_column_int(s, 19));
      f.detail = ColumnText(s, 20);
      f.timings = JobTimings{sqlite3_column_int64(s, 21), sqlite3_column_int64(s, 22),
                             sqlite3_column_int64(s, 23), sqlite3_column_int64(s, 24)};
      f.prompt_tokens = prompt_tokens;
      job->finished = std::move(f);
      job->state = JobState::kFinished;
    } else if (job->prompt.size() != prompt_tokens || job->prompt.empty()) {
      return damaged("unfinished job " + std::to_string(job->id) + " has no whole prompt");
    }
    const uint64_t id = job->id;
    if (Status held = cache_.Insert(std::move(job)); !held.ok()) {
      return Error{held.code(), options_.path + ": job " + std::to_string(id) + " is held twice"};
    }
  }
  s = Statement("SELECT * FROM chunks ORDER BY job_id, seq");
  if (s == nullptr) return damaged(sqlite3_errmsg(db_));
  while (sqlite3_step(s) == SQLITE_ROW) {
    const uint64_t id = FromSql(sqlite3_column_int64(s, 0));
    JobRecord* job = cache_.Find(id);
    const int64_t seq = sqlite3_column_int64(s, 1);
    const int64_t first = sqlite3_column_int64(s, 2);
    std::vector<uint32_t> tokens;
    if (job == nullptr) continue;  // A chunk whose job was forgotten in the same commit.
    if (seq != static_cast<int64_t>(job->chunk_starts.size()) ||
        first != static_cast<int64_t>(job->output.size()) || !ColumnTokens(s, 3, &tokens)) {
      return damaged("job " + std::to_string(id) + " chunk " + std::to_string(seq) +
                     " does not follow the chunks before it");
    }
    job->chunk_starts.push_back(static_cast<uint32_t>(job->output.size()));
    job->chunk_texts.push_back(ColumnText(s, 4));
    job->output.insert(job->output.end(), tokens.begin(), tokens.end());
  }
  cache_.ForEach([](JobRecord& job) {
    if (!job.finished) return;
    job.finished->completion_tokens = static_cast<uint32_t>(job.output.size());
    job.finished->chunks = static_cast<uint32_t>(job.chunk_starts.size());
  });
  s = Statement("SELECT * FROM models ORDER BY name, rowid");
  if (s == nullptr) return damaged(sqlite3_errmsg(db_));
  while (sqlite3_step(s) == SQLITE_ROW) {
    StoredModelLoad load;
    load.name = ColumnText(s, 0);
    load.path = ColumnText(s, 1);
    const std::string boards = ColumnText(s, 2);
    if (!ParseBoardsText(boards, &load.boards)) {
      return damaged("model '" + load.name + "' has a board list that is not numbers: '" +
                     boards + "'");
    }
    load.slots = static_cast<uint32_t>(sqlite3_column_int64(s, 3));
    load.context_length = static_cast<uint32_t>(sqlite3_column_int64(s, 4));
    cache_.ModelLoaded(load).IgnoreError();  // The memory store takes every load.
  }
  s = Statement("SELECT * FROM boards ORDER BY board");
  if (s == nullptr) return damaged(sqlite3_errmsg(db_));
  while (sqlite3_step(s) == SQLITE_ROW) {
    StoredBoardState b;
    b.board = static_cast<uint32_t>(sqlite3_column_int64(s, 0));
    b.operator_drain = static_cast<uint8_t>(sqlite3_column_int64(s, 1));
    b.incident_id = FromSql(sqlite3_column_int64(s, 2));
    b.incident_code = static_cast<uint16_t>(sqlite3_column_int64(s, 3));
    b.incident_message = ColumnText(s, 4);
    b.incident_state = ColumnText(s, 5);
    b.incident_opened_unix_ms = sqlite3_column_int64(s, 6);
    b.incident_recoveries = static_cast<uint32_t>(sqlite3_column_int64(s, 7));
    b.incident_last_action = ColumnText(s, 8);
    cache_.BoardStateChanged(b).IgnoreError();  // The memory store takes every state.
  }
  return HostOk();
}

bool SqliteJobStore::Exec(const char* sql) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return true;
  Fail(rc, sql);
  return false;
}

void SqliteJobStore::Fail(int rc, const char* what) {
  disk_full_ = (rc & 0xff) == SQLITE_FULL;
  failure_ = std::string(what).substr(0, 40) + ": " + sqlite3_errmsg(db_);
}

void SqliteJobStore::Rollback() {
  if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  in_transaction_ = false;
}

Status SqliteJobStore::Write(const std::function<bool()>& write) {
  if (stalled_) return OkStatus();  // Kept in the unsaved sets; Commit() writes it.
  if (!in_transaction_) {
    if (!Exec("BEGIN")) {
      stalled_ = true;
      return disk_full_ ? ResourceExhausted() : Unavailable();
    }
    in_transaction_ = true;
  }
  if (write()) return OkStatus();
  log::Error("store", "job store {}: {}; writes wait for the disk", options_.path, failure_);
  ++write_failures_;
  Rollback();
  stalled_ = true;
  return disk_full_ ? ResourceExhausted() : Unavailable();
}

// Steps a bound statement that returns no rows; false (recorded by Fail) when it failed.
#define WAFER_STEP_OR_FAIL(store, s, what)                  \
  do {                                                      \
    if ((s) == nullptr) {                                   \
      (store)->Fail(sqlite3_errcode((store)->db_), what);   \
      return false;                                         \
    }                                                       \
    const int step_rc = sqlite3_step(s);                    \
    if (step_rc != SQLITE_DONE) {                           \
      (store)->Fail(step_rc, what);                         \
      return false;                                         \
    }                                                       \
  } while (0)

bool SqliteJobStore::WriteJob(uint64_t id) {
  const JobRecord* job = cache_.Find(id);
  sqlite3_stmt* s = Statement(kDeleteChunks);
  if (s != nullptr) sqlite3_bind_int64(s, 1, AsSql(id));
  WAFER_STEP_OR_FAIL(this, s, "delete chunks");
  if (job == nullptr) {
    s = Statement(kDeleteJob);
    if (s != nullptr) sqlite3_bind_int64(s, 1, AsSql(id));
    WAFER_STEP_OR_FAIL(this, s, "delete job");
    return true;
  }
  s = Statement(kInsertJob);
  if (s != nullptr) {
    sqlite3_bind_int64(s, 1, AsSql(job->id));
    sqlite3_bind_int64(s, 2, AsSql(job->accept_seq));
    BindText(s, 3, job->model);
    BindText(s, 4, job->tenant);
    BindText(s, 5, job->idempotency_key);
    sqlite3_bind_blob64(s, 6, job->request_digest.data(), job->request_digest.size(),
                        SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 7, job->priority);
    const bool finished = job->finished.has_value();
    if (!finished) BindTokens(s, 8, job->prompt.data(), job->prompt.size());
    sqlite3_bind_int64(s, 9, finished ? job->finished->prompt_tokens : job->prompt.size());
    sqlite3_bind_int64(s, 10, job->max_tokens);
    sqlite3_bind_double(s, 11, job->sampling.temperature);
    sqlite3_bind_int64(s, 12, job->sampling.top_k);
    sqlite3_bind_double(s, 13, job->sampling.top_p);
    sqlite3_bind_int64(s, 14, AsSql(job->sampling.seed));
    if (!finished) BindTokens(s, 15, job->stop_tokens.data(), job->stop_tokens.size());
    sqlite3_bind_int(s, 16, job->want_text ? 1 : 0);
    sqlite3_bind_int64(s, 17, AsSql(job->deadline_unix_ms));
    sqlite3_bind_int64(s, 18, job->accepted_unix_ms);
    if (finished) BindEnding(s, 19, *job->finished);
    if (job->cancel_requested) sqlite3_bind_int(s, 26, static_cast<int>(job->cancel_reason));
    sqlite3_bind_int64(s, 27, job->ttft_target_ms);
  }
  WAFER_STEP_OR_FAIL(this, s, "insert job");
  for (size_t i = 0; i < job->chunk_starts.size(); ++i) {
    if (!WriteChunk(*job, i)) return false;
  }
  return true;
}

bool SqliteJobStore::WriteChunk(const JobRecord& job, size_t index) {
  const uint32_t begin = job.chunk_starts[index];
  const uint32_t end = index + 1 < job.chunk_starts.size()
                           ? job.chunk_starts[index + 1]
                           : static_cast<uint32_t>(job.output.size());
  sqlite3_stmt* s = Statement(kInsertChunk);
  if (s != nullptr) {
    sqlite3_bind_int64(s, 1, AsSql(job.id));
    sqlite3_bind_int64(s, 2, static_cast<int64_t>(index));
    sqlite3_bind_int64(s, 3, begin);
    BindTokens(s, 4, job.output.data() + begin, end - begin);
    BindText(s, 5, job.chunk_texts[index]);
  }
  WAFER_STEP_OR_FAIL(this, s, "insert chunk");
  return true;
}

bool SqliteJobStore::WriteModel(const std::string& name) {
  // Every replica of `name` as the cache holds them: the old rows go, the current ones go in.
  sqlite3_stmt* s = Statement(kDeleteModel);
  if (s != nullptr) BindText(s, 1, name);
  WAFER_STEP_OR_FAIL(this, s, "delete model");
  for (const StoredModelLoad& load : cache_.LoadedModels()) {
    if (load.name != name) continue;
    s = Statement(kInsertModel);
    if (s != nullptr) {
      BindText(s, 1, load.name);
      BindText(s, 2, load.path);
      BindText(s, 3, BoardsText(load.boards));
      sqlite3_bind_int64(s, 4, load.slots);
      sqlite3_bind_int64(s, 5, load.context_length);
    }
    WAFER_STEP_OR_FAIL(this, s, "insert model");
  }
  return true;
}

Status SqliteJobStore::Insert(std::unique_ptr<JobRecord> job) {
  if (stalled_) return disk_full_ ? ResourceExhausted() : Unavailable();
  if (sync_failed()) return Unavailable();
  if (cache_.Find(job->id) != nullptr) return AlreadyExists();
  const uint64_t id = job->id;
  WAFER_RETURN_IF_ERROR(cache_.Insert(std::move(job)));
  Status written = Write([this, id] { return WriteJob(id); });
  if (!written.ok()) {
    // The job is refused: it leaves the cache, and the replay must not write it.
    cache_.Erase(id).IgnoreError();
    return written;
  }
  unsaved_jobs_.insert(id);
  return OkStatus();
}

Status SqliteJobStore::ChunkAppended(const JobRecord& job, size_t chunk_index) {
  WAFER_RETURN_IF_ERROR(cache_.ChunkAppended(job, chunk_index));
  unsaved_jobs_.insert(job.id);
  Write([this, &job, chunk_index] { return WriteChunk(job, chunk_index); }).IgnoreError();
  return OkStatus();  // Written now, or kept for the next Commit().
}

Status SqliteJobStore::Finished(const JobRecord& job) {
  WAFER_RETURN_IF_ERROR(cache_.Finished(job));
  unsaved_jobs_.insert(job.id);
  Write([this, &job] {
    sqlite3_stmt* s = Statement(kFinishJob);
    if (s != nullptr) {
      sqlite3_bind_int64(s, 1, AsSql(job.id));
      BindEnding(s, 2, *job.finished);
    }
    WAFER_STEP_OR_FAIL(this, s, "finish job");
    return true;
  }).IgnoreError();
  return OkStatus();
}

Status SqliteJobStore::CancelRequested(const JobRecord& job) {
  if (cache_.Find(job.id) != &job) return NotFound();
  unsaved_jobs_.insert(job.id);
  Write([this, &job] {
    sqlite3_stmt* s = Statement(kCancelJob);
    if (s != nullptr) {
      sqlite3_bind_int64(s, 1, AsSql(job.id));
      sqlite3_bind_int(s, 2, static_cast<int>(job.cancel_reason));
    }
    WAFER_STEP_OR_FAIL(this, s, "cancel job");
    return true;
  }).IgnoreError();
  return OkStatus();
}

Status SqliteJobStore::Erase(uint64_t id) {
  WAFER_RETURN_IF_ERROR(cache_.Erase(id));
  unsaved_jobs_.insert(id);
  Write([this, id] { return WriteJob(id); }).IgnoreError();  // Deletes: the cache lacks it.
  return OkStatus();
}

Status SqliteJobStore::ModelLoaded(const StoredModelLoad& load) {
  cache_.ModelLoaded(load).IgnoreError();
  unsaved_models_.insert(load.name);
  Write([this, name = load.name] { return WriteModel(name); }).IgnoreError();
  return OkStatus();
}

Status SqliteJobStore::ModelRemoved(const std::string& name) {
  WAFER_RETURN_IF_ERROR(cache_.ModelRemoved(name));
  unsaved_models_.insert(name);
  Write([this, name] { return WriteModel(name); }).IgnoreError();
  return OkStatus();
}

Status SqliteJobStore::ModelReplicaRemoved(const std::string& name,
                                           const std::vector<uint32_t>& boards) {
  WAFER_RETURN_IF_ERROR(cache_.ModelReplicaRemoved(name, boards));
  unsaved_models_.insert(name);
  Write([this, name] { return WriteModel(name); }).IgnoreError();  // The others' rows stay.
  return OkStatus();
}

bool SqliteJobStore::WriteBoard(uint32_t board) {
  // The board's state as the cache holds it: its row goes, and comes back unless it is empty.
  sqlite3_stmt* s = Statement(kDeleteBoard);
  if (s != nullptr) sqlite3_bind_int64(s, 1, board);
  WAFER_STEP_OR_FAIL(this, s, "delete board");
  for (const StoredBoardState& b : cache_.BoardStates()) {
    if (b.board != board) continue;
    s = Statement(kInsertBoard);
    if (s != nullptr) {
      sqlite3_bind_int64(s, 1, b.board);
      sqlite3_bind_int64(s, 2, b.operator_drain);
      sqlite3_bind_int64(s, 3, AsSql(b.incident_id));
      sqlite3_bind_int64(s, 4, b.incident_code);
      BindText(s, 5, b.incident_message);
      BindText(s, 6, b.incident_state);
      sqlite3_bind_int64(s, 7, b.incident_opened_unix_ms);
      sqlite3_bind_int64(s, 8, b.incident_recoveries);
      BindText(s, 9, b.incident_last_action);
    }
    WAFER_STEP_OR_FAIL(this, s, "insert board");
  }
  return true;
}

Status SqliteJobStore::BoardStateChanged(const StoredBoardState& state) {
  cache_.BoardStateChanged(state).IgnoreError();
  unsaved_boards_.insert(state.board);
  Write([this, board = state.board] { return WriteBoard(board); }).IgnoreError();
  return OkStatus();
}

Status SqliteJobStore::Commit() {
  if (stalled_) {
    // Everything touched since the last good commit, written again whole from the records:
    // the removals first, so that the room they free is there for the rest.
    if (!Exec("BEGIN")) return Unavailable();
    in_transaction_ = true;
    for (bool removals : {true, false}) {
      for (uint64_t id : unsaved_jobs_) {
        if ((cache_.Find(id) == nullptr) != removals) continue;
        if (!WriteJob(id)) {
          Rollback();
          return Unavailable();
        }
      }
    }
    for (const std::string& name : unsaved_models_) {
      if (!WriteModel(name)) {
        Rollback();
        return Unavailable();
      }
    }
    for (uint32_t board : unsaved_boards_) {
      if (!WriteBoard(board)) {
        Rollback();
        return Unavailable();
      }
    }
  }
  if (!in_transaction_) return OkStatus();
  if (!Exec("COMMIT")) {
    log::Error("store", "job store {}: {}; writes wait for the disk", options_.path, failure_);
    ++write_failures_;
    Rollback();
    stalled_ = true;
    return Unavailable();
  }
  in_transaction_ = false;
  ++written_;
  ++commits_;
  if (syncer_) syncer_->Request(written_);
  if (stalled_) {
    log::Info("store", "job store {}: the disk took the waiting writes ({} jobs)", options_.path,
              unsaved_jobs_.size());
  }
  stalled_ = false;
  disk_full_ = false;
  failure_.clear();
  unsaved_jobs_.clear();
  unsaved_models_.clear();
  unsaved_boards_.clear();
  return OkStatus();
}

JobStoreStats SqliteJobStore::stats() const {
  JobStoreStats s;
  s.commits = commits_;
  s.fsyncs = syncer_ ? syncer_->fsyncs() : 0;
  s.fsync_seconds = syncer_ ? syncer_->fsync_seconds() : 0;
  s.write_failures = write_failures_;
  s.stalled = stalled_ || sync_failed();
  return s;
}

std::string SqliteJobStore::Describe() const {
  std::string text = "job store " + options_.path;
  if (sync_failed()) text += ": fsync failed; nothing since counts as durable";
  if (stalled_) {
    text += (disk_full_ ? ": disk full (" : ": writes failing (") + failure_ + "); " +
            std::to_string(unsaved_jobs_.size()) + " accepted jobs' writes wait";
  }
  return text;
}

}  // namespace wafer::host

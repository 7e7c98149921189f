// The durable job store's record decoding (SqliteJobStore::Open reads every job, chunk and model
// row back; the file is on disk, where a disk error, a crash mid-write or a hand edit can leave
// anything): never crashes, and a refusal always names the file and what is damaged.
//
// An input is rows of the store's own tables, one per line: the table name, then its columns
// separated by tabs, each typed by its first character: i<integer>, r<real>, x<hex blob>,
// t<text>, n (NULL); missing columns are NULL. The target writes them into a fresh store of the
// current schema with plain SQL (so any value of any type can sit in any column, as in a damaged
// file) and opens it. The seeds are the rows of a real store that a JobTable wrote.
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "host/jobs/job_table.h"
#include "host/jobs/sqlite_job_store.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer;
using namespace wafer::host;

namespace {

const FakeClock& TheClock() {
  static const FakeClock* clock = new FakeClock(5'000'000'000, 1'700'000'000'000'000'000);
  return *clock;
}

std::string ScratchPath(const char* what) {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/wafer_job_store_fuzz_" + what + "_" +
         std::to_string(::getpid()) + ".db";
}

void RemoveStore(const std::string& path) {
  std::remove(path.c_str());
  std::remove((path + "-wal").c_str());
  std::remove((path + "-journal").c_str());
}

// An empty store of the current schema, as bytes (made once).
const std::string& EmptyStore() {
  static const std::string* bytes = [] {
    const std::string path = ScratchPath("empty");
    RemoveStore(path);
    SqliteJobStore::Open(SqliteStoreOptions{path, false, 0}, TheClock()).value().reset();
    std::ifstream in(path, std::ios::binary);
    auto* b = new std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    RemoveStore(path);
    return b;
  }();
  return *bytes;
}

int Columns(std::string_view table) {
  if (table == "jobs") return 27;
  if (table == "chunks" || table == "models") return 5;
  return 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

void BindField(sqlite3_stmt* s, int index, std::string_view field) {
  if (field.empty() || field[0] == 'n') return;  // NULL (statements start unbound).
  const std::string rest(field.substr(1));
  switch (field[0]) {
    case 'i':
      sqlite3_bind_int64(s, index, std::strtoll(rest.c_str(), nullptr, 10));
      return;
    case 'r':
      sqlite3_bind_double(s, index, std::strtod(rest.c_str(), nullptr));
      return;
    case 'x': {
      std::string blob;
      for (size_t i = 0; i + 1 < rest.size(); i += 2) {
        const int hi = HexValue(rest[i]), lo = HexValue(rest[i + 1]);
        if (hi < 0 || lo < 0) break;
        blob.push_back(static_cast<char>(hi * 16 + lo));
      }
      sqlite3_bind_blob64(s, index, blob.data(), blob.size(), SQLITE_TRANSIENT);
      return;
    }
    default:
      sqlite3_bind_text64(s, index, rest.data(), rest.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      return;
  }
}

// Inserts the rows of `text` into the store at `path`; rows SQLite refuses (a NOT NULL column
// left NULL, a duplicate key) are skipped, as they could never be in a file.
void WriteRows(const std::string& path, std::string_view text) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return;
  }
  sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
  while (!text.empty()) {
    const size_t eol = std::min(text.find('\n'), text.size());
    const std::string_view line = text.substr(0, eol);
    text.remove_prefix(std::min(eol + 1, text.size()));
    const size_t tab = std::min(line.find('\t'), line.size());
    const std::string_view table = line.substr(0, tab);
    const int columns = Columns(table);
    if (columns == 0) continue;
    std::string sql = "INSERT INTO " + std::string(table) + " VALUES(";
    for (int i = 0; i < columns; ++i) sql += i == 0 ? "?" : ",?";
    sql += ")";
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) continue;
    std::string_view fields = line.substr(std::min(tab + 1, line.size()));
    for (int i = 1; i <= columns && !fields.empty(); ++i) {
      const size_t end = std::min(fields.find('\t'), fields.size());
      BindField(s, i, fields.substr(0, end));
      fields.remove_prefix(std::min(end + 1, fields.size()));
    }
    sqlite3_step(s);
    sqlite3_finalize(s);
  }
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(db);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ScratchPath("input");
  RemoveStore(path);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(EmptyStore().data(), static_cast<std::streamsize>(EmptyStore().size()));
  }
  WriteRows(path, std::string_view(reinterpret_cast<const char*>(data), size));
  {
    auto store = SqliteJobStore::Open(SqliteStoreOptions{path, false, 0}, TheClock());
    if (!store.ok()) FUZZ_CHECK(!store.error().message.empty());
  }
  RemoveStore(path);
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  const std::string path = ScratchPath("seed");
  RemoveStore(path);
  {
    std::unique_ptr<SqliteJobStore> store =
        SqliteJobStore::Open(SqliteStoreOptions{path, false, 0}, TheClock()).value();
    JobTable table(*store, 10, UINT64_MAX);  // No byte limit.
    auto request = [](const std::string& key) {
      auto job = std::make_unique<JobRecord>();
      job->model = "m";
      job->tenant = "t";
      job->idempotency_key = key;
      job->request_digest = "digest-" + key;
      job->priority = 9;
      job->prompt = {0, 1, 2};
      job->prefill = job->prompt;
      job->max_tokens = 16;
      job->sampling = Sampling{0.5f, 40, 0.9f, 0xfeedfacecafebeefull};
      job->stop_tokens = {2, 4};
      job->deadline_unix_ms = UINT64_MAX;
      job->ttft_target_ms = 250;
      job->accepted_unix_ms = 1'700'000'000'000;
      return job;
    };
    JobRecord& waiting = *table.Add(request("a")).value();
    table.RequestCancel(waiting, FinishReason::kAbandoned);
    JobRecord& run = *table.Add(request("b")).value();
    JobRecord& fin = *table.Add(request("c")).value();
    const std::vector<uint32_t> first = {10, 11}, second = {12};
    table.AppendChunk(run, first, "ab").IgnoreError();
    table.AppendChunk(run, second, "c").IgnoreError();
    table.AppendChunk(fin, second, "z").IgnoreError();
    table.Finish(fin, FinishReason::kStopToken, ErrorCode::kNone, "", 7'000'000'000);
    store->ModelLoaded(StoredModelLoad{"m", "/models/m", {1, 0}, 8, 512}).IgnoreError();
    store->Commit().IgnoreError();
  }
  // Dump every row in the input format.
  std::string all;
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  for (const char* table : {"jobs", "chunks", "models"}) {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, (std::string("SELECT * FROM ") + table).c_str(), -1, &s, nullptr);
    while (sqlite3_step(s) == SQLITE_ROW) {
      std::string line = table;
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        line += '\t';
        switch (sqlite3_column_type(s, c)) {
          case SQLITE_INTEGER:
            line += "i" + std::to_string(sqlite3_column_int64(s, c));
            break;
          case SQLITE_FLOAT: {
            char buf[32];
            std::snprintf(buf, sizeof(buf), "r%.9g", sqlite3_column_double(s, c));
            line += buf;
            break;
          }
          case SQLITE_BLOB: {
            line += 'x';
            const auto* b = static_cast<const unsigned char*>(sqlite3_column_blob(s, c));
            for (int i = 0; i < sqlite3_column_bytes(s, c); ++i) {
              line += "0123456789abcdef"[b[i] >> 4];
              line += "0123456789abcdef"[b[i] & 15];
            }
            break;
          }
          case SQLITE_TEXT:
            line += "t" + std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, c)),
                                      sqlite3_column_bytes(s, c));
            break;
          default:
            line += 'n';
        }
      }
      all += line + "\n";
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  RemoveStore(path);
  // The whole store, and one seed per table so mutations stay near each kind of row.
  std::vector<std::string> seeds = {all};
  size_t at = 0;
  while (at < all.size()) {
    const size_t eol = all.find('\n', at);
    seeds.push_back(all.substr(at, eol - at + 1));
    at = eol + 1;
  }
  return seeds;
}

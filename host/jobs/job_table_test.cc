#include "host/jobs/job_table.h"

#include <gtest/gtest.h>

#include "host/jobs/in_memory_job_store.h"

namespace wafer::host {
namespace {

constexpr uint64_t kNoByteLimit = UINT64_MAX;

std::unique_ptr<JobRecord> Request(const std::string& tenant, const std::string& key,
                                   uint64_t deadline_ms = 0) {
  auto job = std::make_unique<JobRecord>();
  job->model = "m";
  job->tenant = tenant;
  job->idempotency_key = key;
  job->prompt = {1, 2, 3};
  job->prefill = job->prompt;
  job->max_tokens = 8;
  job->deadline_unix_ms = deadline_ms;
  job->accepted_ns = 1000;
  return job;
}

TEST(JobTableTest, AssignsRandomIdsAcceptanceOrderAndFindsByKey) {
  InMemoryJobStore store;
  JobTable table(store, 10, kNoByteLimit);
  JobRecord* a = table.Add(Request("t", "k1")).value();
  JobRecord* b = table.Add(Request("t", "")).value();
  EXPECT_NE(a->id, 0u);
  EXPECT_NE(b->id, 0u);
  EXPECT_NE(a->id, b->id);
  // Not a counter: two consecutive ids one apart would be a 2^-64 accident.
  EXPECT_NE(b->id, a->id + 1);
  EXPECT_EQ(a->accept_seq, 1u);
  EXPECT_EQ(b->accept_seq, 2u);
  EXPECT_EQ(table.Find(b->id), b);
  EXPECT_EQ(table.FindByKey("t", "k1"), a);
  EXPECT_EQ(table.FindByKey("other", "k1"), nullptr);
  EXPECT_EQ(store.size(), 2u);
}

TEST(JobTableTest, TenantAndKeyCannotCollideAcrossTheirBoundary) {
  // With tenant + '\0' + key, tenant "a\0b" key "c" and tenant "a" key "b\0c" were one key.
  InMemoryJobStore store;
  JobTable table(store, 10, kNoByteLimit);
  const std::string t1("a\0b", 3), k1("c"), t2("a"), k2("b\0c", 3);
  JobRecord* first = table.Add(Request(t1, k1)).value();
  EXPECT_EQ(table.FindByKey(t2, k2), nullptr);
  JobRecord* second = table.Add(Request(t2, k2)).value();
  EXPECT_EQ(table.FindByKey(t1, k1), first);
  EXPECT_EQ(table.FindByKey(t2, k2), second);
}

TEST(JobTableTest, ChunksAndRequeueRebuildThePrefill) {
  InMemoryJobStore store;
  JobTable table(store, 10, kNoByteLimit);
  JobRecord& job = *table.Add(Request("t", "")).value();
  table.MarkRunning(job, 5);
  EXPECT_EQ(job.state, JobState::kRunning);
  EXPECT_EQ(job.slot, 5);
  const std::vector<uint32_t> first = {7, 8}, second = {9};
  ASSERT_TRUE(table.AppendChunk(job, first, "ab").ok());
  ASSERT_TRUE(table.AppendChunk(job, second, "c").ok());
  EXPECT_EQ(job.output, (std::vector<uint32_t>{7, 8, 9}));
  EXPECT_EQ(job.chunk_starts, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(job.chunk_texts, (std::vector<std::string>{"ab", "c"}));
  EXPECT_EQ(table.tokens_streamed(), 3u);
  job.prefill_fed = 3;
  job.in_flight = true;
  table.MarkRequeued(job);
  EXPECT_EQ(job.state, JobState::kQueued);
  EXPECT_EQ(job.slot, -1);
  EXPECT_FALSE(job.in_flight);
  EXPECT_EQ(job.prefill, (std::vector<uint32_t>{1, 2, 3, 7, 8, 9}));
  EXPECT_EQ(job.prefill_fed, 0u);
}

TEST(JobTableTest, TokensAreCountedPerTenantWithABoundOnTenants) {
  InMemoryJobStore store;
  JobTable table(store, 10, kNoByteLimit);
  const std::vector<uint32_t> two = {1, 2};
  JobRecord& a = *table.Add(Request("team-a", "")).value();
  JobRecord& b = *table.Add(Request("team-b", "")).value();
  ASSERT_TRUE(table.AppendChunk(a, two, "").ok());
  ASSERT_TRUE(table.AppendChunk(a, two, "").ok());
  ASSERT_TRUE(table.AppendChunk(b, two, "").ok());
  EXPECT_EQ(table.tokens_by_tenant().at("team-a"), 4u);
  EXPECT_EQ(table.tokens_by_tenant().at("team-b"), 2u);
  // Past kMaxTenantCounters tenants, new ones share one counter.
  for (size_t i = table.tokens_by_tenant().size(); i < JobTable::kMaxTenantCounters; ++i) {
    JobRecord& job = *table.Add(Request("t" + std::to_string(i), "")).value();
    ASSERT_TRUE(table.AppendChunk(job, two, "").ok());
  }
  EXPECT_EQ(table.tokens_by_tenant().size(), JobTable::kMaxTenantCounters);
  JobRecord& late = *table.Add(Request("late-comer", "")).value();
  ASSERT_TRUE(table.AppendChunk(late, two, "").ok());
  JobRecord& later = *table.Add(Request("later-still", "")).value();
  ASSERT_TRUE(table.AppendChunk(later, two, "").ok());
  EXPECT_EQ(table.tokens_by_tenant().count("late-comer"), 0u);
  EXPECT_EQ(table.tokens_by_tenant().at(JobTable::kOtherTenants), 4u);
  ASSERT_TRUE(table.AppendChunk(a, two, "").ok());  // Known tenants keep their own count.
  EXPECT_EQ(table.tokens_by_tenant().at("team-a"), 6u);
}

TEST(JobTableTest, FinishRecordsTimingsAndRetentionForgetsTheOldest) {
  InMemoryJobStore store;
  JobTable table(store, 2, kNoByteLimit);
  std::vector<uint64_t> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(table.Add(Request("t", "k" + std::to_string(i))).value()->id);
  JobRecord& first = *table.Find(ids[0]);
  first.first_step_ns = 1500;
  first.first_token_ns = 2000;
  const JobFinished& f = table.Finish(first, FinishReason::kLength, ErrorCode::kNone, "", 5000);
  EXPECT_EQ(f.job_id, ids[0]);
  EXPECT_EQ(f.timings.queued_ns, 500);
  EXPECT_EQ(f.timings.ttft_ns, 1000);
  EXPECT_EQ(f.timings.total_ns, 4000);
  EXPECT_EQ(f.prompt_tokens, 3u);
  EXPECT_EQ(first.state, JobState::kFinished);
  // A resume needs the output and the ending, not the request.
  EXPECT_TRUE(first.prompt.empty());
  EXPECT_TRUE(first.prefill.empty());
  table.Finish(*table.Find(ids[1]), FinishReason::kCancelled, ErrorCode::kNone, "", 6000);
  table.Finish(*table.Find(ids[2]), FinishReason::kCancelled, ErrorCode::kNone, "", 7000);
  // Retention 2: the oldest finished job and its key are gone; the unfinished one stays.
  EXPECT_EQ(table.Find(ids[0]), nullptr);
  EXPECT_EQ(table.FindByKey("t", "k0"), nullptr);
  EXPECT_NE(table.Find(ids[1]), nullptr);
  EXPECT_NE(table.Find(ids[3]), nullptr);
  EXPECT_EQ(table.finished_count(), 3u);
  int unfinished = 0;
  table.ForEachUnfinished([&](JobRecord& job) {
    EXPECT_EQ(job.id, ids[3]);
    ++unfinished;
  });
  EXPECT_EQ(unfinished, 1);
}

TEST(JobTableTest, RetentionZeroKeepsTheNewestUntilTheNextFinishes) {
  InMemoryJobStore store;
  JobTable table(store, 0, kNoByteLimit);
  JobRecord& a = *table.Add(Request("t", "")).value();
  JobRecord& b = *table.Add(Request("t", "")).value();
  const uint64_t a_id = a.id;
  table.Finish(a, FinishReason::kLength, ErrorCode::kNone, "", 10);
  EXPECT_NE(table.Find(a_id), nullptr);
  table.Finish(b, FinishReason::kLength, ErrorCode::kNone, "", 20);
  EXPECT_EQ(table.Find(a_id), nullptr);
  EXPECT_EQ(store.size(), 1u);
}

TEST(JobTableTest, DeadlinesExpireSoonestFirstButNotWhileInFlight) {
  InMemoryJobStore store;
  JobTable table(store, 10, kNoByteLimit);
  JobRecord& late = *table.Add(Request("t", "", 300)).value();
  JobRecord& soon = *table.Add(Request("t", "", 100)).value();
  JobRecord& flying = *table.Add(Request("t", "", 200)).value();
  table.Add(Request("t", "")).value();  // No deadline: never expires.
  flying.in_flight = true;
  std::vector<uint64_t> due;
  table.TakeExpired(99, &due);
  EXPECT_TRUE(due.empty());
  table.TakeExpired(1000, &due);
  EXPECT_EQ(due, std::vector<uint64_t>{soon.id});  // Stops at the job still in flight.
  flying.in_flight = false;
  due.clear();
  table.TakeExpired(1000, &due);
  EXPECT_EQ(due, (std::vector<uint64_t>{flying.id, late.id}));
  due.clear();
  table.TakeExpired(1000, &due);
  EXPECT_TRUE(due.empty());
}

TEST(JobTableTest, ADeadlinePast2To63MillisecondsIsFarAwayNotPast) {
  InMemoryJobStore store;
  JobTable table(store, 10, kNoByteLimit);
  table.Add(Request("t", "", UINT64_MAX)).value();
  table.Add(Request("t", "", uint64_t{1} << 63)).value();
  std::vector<uint64_t> due;
  table.TakeExpired(1'800'000'000'000, &due);  // 2027.
  EXPECT_TRUE(due.empty());
}

TEST(JobTableTest, ANewTableOverTheSameStoreRebuildsItsIndexes) {
  InMemoryJobStore store;
  uint64_t keyed = 0;
  {
    JobTable table(store, 10, kNoByteLimit);
    keyed = table.Add(Request("t", "key", 500)).value()->id;
    JobRecord& done = *table.Add(Request("t", "")).value();
    table.Finish(done, FinishReason::kLength, ErrorCode::kNone, "", 10);
  }
  JobTable again(store, 10, kNoByteLimit);
  EXPECT_EQ(again.FindByKey("t", "key")->id, keyed);
  EXPECT_EQ(again.Add(Request("t", "")).value()->accept_seq, 3u);  // The order continues.
  std::vector<uint64_t> due;
  again.TakeExpired(600, &due);
  EXPECT_EQ(due, std::vector<uint64_t>{keyed});
}

TEST(JobTableTest, RetentionBytesForgetTheOldestFinishedJobs) {
  InMemoryJobStore store;
  std::vector<uint64_t> ids;
  // Each finished job below retains its record plus 1,000 tokens; the limit holds two.
  const std::vector<uint32_t> output(1000, 7);
  // The record, model "m", tenant "t", key "kN", the tokens, one chunk start, one empty text.
  const uint64_t one = sizeof(JobRecord) + 4 + 4000 + 4 + sizeof(std::string);
  JobTable table(store, 1000, 2 * one + one / 2);
  for (int i = 0; i < 4; ++i) {
    JobRecord& job = *table.Add(Request("t", "k" + std::to_string(i))).value();
    ids.push_back(job.id);
    ASSERT_TRUE(table.AppendChunk(job, output, "").ok());
    table.Finish(job, FinishReason::kLength, ErrorCode::kNone, "", 10 + i);
  }
  EXPECT_EQ(table.Find(ids[0]), nullptr);
  EXPECT_EQ(table.Find(ids[1]), nullptr);
  EXPECT_NE(table.Find(ids[2]), nullptr);
  EXPECT_NE(table.Find(ids[3]), nullptr);
  EXPECT_LE(table.retained_bytes(), 2 * one + one / 2);
  EXPECT_GT(table.retained_bytes(), one);
}

// A store that refuses writes: nothing is indexed.
class RefusingStore final : public JobStore {
 public:
  uint64_t instance_id() const override { return 1; }
  bool dirty() const override { return false; }
  Status Commit() override { return OkStatus(); }
  uint64_t written() const override { return 0; }
  uint64_t durable() const override { return 0; }
  int durable_event_fd() const override { return -1; }
  std::string Describe() const override { return "refusing"; }
  JobStoreStats stats() const override { return {}; }
  Status ModelLoaded(const StoredModelLoad&) override { return Unavailable(); }
  Status ModelRemoved(const std::string&) override { return Unavailable(); }
  Status ModelReplicaRemoved(const std::string&, const std::vector<uint32_t>&) override {
    return Unavailable();
  }
  Status BoardStateChanged(const StoredBoardState&) override { return Unavailable(); }
  std::vector<StoredBoardState> BoardStates() const override { return {}; }
  std::vector<StoredModelLoad> LoadedModels() const override { return {}; }
  Status Insert(std::unique_ptr<JobRecord>) override { return Unavailable(); }
  JobRecord* Find(uint64_t) override { return nullptr; }
  Status ChunkAppended(const JobRecord&, size_t) override { return NotFound(); }
  Status Finished(const JobRecord&) override { return NotFound(); }
  Status CancelRequested(const JobRecord&) override { return NotFound(); }
  Status Erase(uint64_t) override { return NotFound(); }
  void ForEach(const std::function<void(JobRecord&)>&) override {}
  size_t size() const override { return 0; }
};

TEST(JobTableTest, AStoreRefusalIndexesNothing) {
  RefusingStore store;
  JobTable table(store, 10, kNoByteLimit);
  Result<JobRecord*> r = table.Add(Request("t", "k", 100));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(table.FindByKey("t", "k"), nullptr);
  std::vector<uint64_t> due;
  table.TakeExpired(1000, &due);
  EXPECT_TRUE(due.empty());
}

}  // namespace
}  // namespace wafer::host

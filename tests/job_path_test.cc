// The job path end to end over real sockets: submit -> accepted -> token chunks with sequence
// numbers -> finished; cancel; capacity; status; admin load/unload; drain.
#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 30000;

class JobPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new TempDir();
    ASSERT_TRUE(WriteModel(model_dir_->path() + "/tiny", "tiny", 11));
  }
  static void TearDownTestSuite() { delete model_dir_; }

  void SetUp() override {
    harness_ = std::make_unique<DaemonHarness>();
    ASSERT_EQ(harness_->Load(model_dir_->path() + "/tiny", "tiny", 8), ErrorCode::kNone);
    client_ = harness_->NewJobClient();
  }

  struct Ran {
    SubmitOutcome outcome;
    JobFinished finished;
    std::vector<TokenChunk> chunks;
    std::vector<uint32_t> tokens;
    std::string text;
  };

  Ran RunJob(SubmitJob job) {
    Ran r;
    HostStatus s = client_->Run(
        job,
        [&](const TokenChunk& c) {
          r.chunks.push_back(c);
          r.tokens.insert(r.tokens.end(), c.tokens.begin(), c.tokens.end());
          r.text += c.text;
        },
        &r.outcome, &r.finished, kTimeoutMs);
    EXPECT_TRUE(IsOk(s));
    return r;
  }

  static SubmitJob Job(const std::string& prompt, uint32_t max_tokens) {
    SubmitJob j;
    j.model = "tiny";
    j.prompt_text = prompt;
    j.max_tokens = max_tokens;
    return j;
  }

  static TempDir* model_dir_;
  std::unique_ptr<DaemonHarness> harness_;
  std::unique_ptr<JobClient> client_;
};

TempDir* JobPathTest::model_dir_ = nullptr;

TEST_F(JobPathTest, StreamsTokensInOrderThenFinishes) {
  Ran r = RunJob(Job("def fibonacci(n):", 20));
  ASSERT_TRUE(r.outcome.accepted) << r.outcome.rejection.detail;
  EXPECT_GT(r.outcome.accepted_reply.job_id, 0u);
  EXPECT_EQ(r.finished.reason, FinishReason::kLength);
  EXPECT_EQ(r.finished.completion_tokens, 20u);
  EXPECT_EQ(r.tokens.size(), 20u);
  EXPECT_GT(r.finished.prompt_tokens, 0u);
  ASSERT_FALSE(r.chunks.empty());
  EXPECT_EQ(r.finished.chunks, r.chunks.size());
  uint32_t index = 0;
  for (size_t i = 0; i < r.chunks.size(); ++i) {
    EXPECT_EQ(r.chunks[i].seq, i);
    EXPECT_EQ(r.chunks[i].first_token_index, index);
    index += static_cast<uint32_t>(r.chunks[i].tokens.size());
  }
  EXPECT_FALSE(r.text.empty());
  EXPECT_GT(r.finished.timings.ttft_ns, 0);
  EXPECT_GE(r.finished.timings.total_ns, r.finished.timings.ttft_ns);
  EXPECT_GT(r.finished.timings.device_ns, 0);
}

TEST_F(JobPathTest, GreedyDecodingIsDeterministicAndSeededSamplingReproducible) {
  Ran a = RunJob(Job("Once upon a time", 16));
  Ran b = RunJob(Job("Once upon a time", 16));
  ASSERT_TRUE(a.outcome.accepted && b.outcome.accepted);
  EXPECT_EQ(a.tokens, b.tokens);
  SubmitJob sampled = Job("Once upon a time", 16);
  sampled.sampling = Sampling{1.0f, 0, 1.0f, 42};
  Ran c = RunJob(sampled);
  Ran d = RunJob(sampled);
  EXPECT_EQ(c.tokens, d.tokens);
}

TEST_F(JobPathTest, TokenPromptsAndStopTokens) {
  SubmitJob j;
  j.model = "tiny";
  j.prompt_tokens = {10, 20, 30, 40};
  j.max_tokens = 12;
  Ran first = RunJob(j);
  ASSERT_TRUE(first.outcome.accepted);
  ASSERT_EQ(first.tokens.size(), 12u);
  // Stop at the fifth token the model produces greedily.
  j.stop_tokens = {first.tokens[4]};
  Ran stopped = RunJob(j);
  EXPECT_EQ(stopped.finished.reason, FinishReason::kStopToken);
  ASSERT_LE(stopped.tokens.size(), 5u);
  EXPECT_EQ(stopped.tokens.back(), first.tokens[4]);
}

TEST_F(JobPathTest, ManyConcurrentJobsAllFinish) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 24; ++i) {
    SubmitOutcome o;
    ASSERT_TRUE(client_->Submit(Job("job " + std::to_string(i), 10), &o, kTimeoutMs).ok());
    ASSERT_TRUE(o.accepted) << o.rejection.detail;
    ids.push_back(o.accepted_reply.job_id);
  }
  std::map<uint64_t, uint32_t> tokens;
  std::map<uint64_t, uint32_t> next_seq;
  size_t finished = 0;
  while (finished < ids.size()) {
    JobMessage m;
    ASSERT_TRUE(IsOk(client_->Receive(&m, kTimeoutMs)));
    if (auto* c = std::get_if<TokenChunk>(&m)) {
      EXPECT_EQ(c->seq, next_seq[c->job_id]++);
      tokens[c->job_id] += static_cast<uint32_t>(c->tokens.size());
    } else if (auto* f = std::get_if<JobFinished>(&m)) {
      EXPECT_EQ(f->reason, FinishReason::kLength);
      EXPECT_EQ(tokens[f->job_id], 10u);
      ++finished;
    }
  }
}

TEST_F(JobPathTest, CancelQueuedAndRunningJobs) {
  // 8 slots: the first 8 jobs run, the rest queue.
  std::vector<uint64_t> ids;
  for (int i = 0; i < 12; ++i) {
    SubmitOutcome o;
    ASSERT_TRUE(client_->Submit(Job("cancel me", 1000), &o, kTimeoutMs).ok());
    ASSERT_TRUE(o.accepted) << o.rejection.detail;
    ids.push_back(o.accepted_reply.job_id);
  }
  JobStatusReply queued;
  ASSERT_TRUE(client_->QueryJob(ids.back(), &queued, kTimeoutMs).ok());
  EXPECT_EQ(queued.state, JobState::kQueued);
  // The step loop grants slots on its own thread: the first job gets one once the loop has run
  // (and on a fast board its 1,000 tokens may already be done).
  JobStatusReply running;
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(client_->QueryJob(ids.front(), &running, kTimeoutMs).ok());
    if (running.state != JobState::kQueued) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(running.state == JobState::kRunning || running.state == JobState::kFinished)
      << JobStateName(running.state);

  // A running job can finish on its own while the cancels go out; every job must end either
  // cancelled (before its last token) or, having won that race, complete.
  std::set<uint64_t> refused;
  for (uint64_t id : ids) {
    CancelResult r;
    ASSERT_TRUE(client_->Cancel(id, &r, kTimeoutMs).ok());
    if (r.code == ErrorCode::kUnknownJob) {
      refused.insert(id);
    } else {
      EXPECT_EQ(r.code, ErrorCode::kNone) << id;
    }
  }
  EXPECT_EQ(refused.count(ids.back()), 0u);  // It was queued: it cannot have finished.
  size_t cancelled = 0, finished = 0;
  std::set<uint64_t> seen;
  while (seen.size() < ids.size()) {
    JobMessage m;
    ASSERT_TRUE(client_->Receive(&m, kTimeoutMs).ok());
    auto* f = std::get_if<JobFinished>(&m);
    if (f == nullptr) continue;
    seen.insert(f->job_id);
    if (f->reason == FinishReason::kCancelled) {
      EXPECT_EQ(refused.count(f->job_id), 0u);
      EXPECT_LT(f->completion_tokens, 1000u);
      ++cancelled;
    } else {
      EXPECT_EQ(f->reason, FinishReason::kLength);
      EXPECT_EQ(f->completion_tokens, 1000u);
      ++finished;
    }
  }
  EXPECT_EQ(finished, refused.size());
  EXPECT_GE(cancelled, 5u);  // At least the four queued jobs and one running one.
  CancelResult again;
  ASSERT_TRUE(client_->Cancel(ids.front(), &again, kTimeoutMs).ok());
  EXPECT_EQ(again.code, ErrorCode::kUnknownJob);
  // Slots came back: a new job runs to the end.
  Ran after = RunJob(Job("after cancel", 5));
  EXPECT_EQ(after.finished.reason, FinishReason::kLength);
}

TEST_F(JobPathTest, IdempotentRetryReturnsTheSameJob) {
  SubmitJob j = Job("idempotent", 4);
  j.tenant = "t1";
  j.idempotency_key = "retry-7";
  SubmitOutcome a, b;
  ASSERT_TRUE(client_->Submit(j, &a, kTimeoutMs).ok());
  ASSERT_TRUE(client_->Submit(j, &b, kTimeoutMs).ok());
  ASSERT_TRUE(a.accepted && b.accepted);
  EXPECT_EQ(a.accepted_reply.job_id, b.accepted_reply.job_id);
  EXPECT_TRUE(b.accepted_reply.duplicate);
}

TEST_F(JobPathTest, ResumeStreamReplaysFromASequenceNumber) {
  Ran r = RunJob(Job("resume", 24));
  ASSERT_TRUE(r.outcome.accepted);
  ASSERT_GE(r.chunks.size(), 2u);
  auto other = harness_->NewJobClient();  // A reconnected scheduler.
  ASSERT_TRUE(other->Send(ResumeStream{r.outcome.accepted_reply.job_id, 1}).ok());
  std::vector<uint32_t> replayed;
  while (true) {
    JobMessage m;
    ASSERT_TRUE(other->Receive(&m, kTimeoutMs).ok());
    if (auto* c = std::get_if<TokenChunk>(&m)) {
      replayed.insert(replayed.end(), c->tokens.begin(), c->tokens.end());
    } else if (std::holds_alternative<JobFinished>(m)) {
      break;
    }
  }
  std::vector<uint32_t> expected(r.tokens.begin() + r.chunks[1].first_token_index, r.tokens.end());
  EXPECT_EQ(replayed, expected);
}

TEST_F(JobPathTest, CapacityAndStatusDescribeTheDaemon) {
  CapacityReply cap;
  ASSERT_TRUE(client_->QueryCapacity(&cap, kTimeoutMs).ok());
  ASSERT_EQ(cap.models.size(), 1u);
  EXPECT_EQ(cap.models[0].name, "tiny");
  EXPECT_EQ(cap.models[0].total_slots, 8u);
  EXPECT_TRUE(cap.models[0].ready);
  EXPECT_TRUE(cap.healthy);
  auto admin = harness_->NewAdminClient();
  StatusReply st;
  ASSERT_TRUE(admin->QueryStatus(&st, kTimeoutMs).ok());
  ASSERT_EQ(st.boards.size(), 1u);
  EXPECT_EQ(st.boards[0].state, BoardState::kReady);
  EXPECT_EQ(st.boards[0].preset, "mini");
  ASSERT_EQ(st.models.size(), 1u);
  EXPECT_EQ(st.models[0].state, ModelState::kReady);
  EXPECT_GT(st.models[0].parameters, 0u);
}

TEST_F(JobPathTest, UnloadThenUnknownModelAndReload) {
  auto admin = harness_->NewAdminClient();
  OperationResult r;
  ASSERT_TRUE(admin->Operate(UnloadModel{0, "tiny", -1}, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kNone) << r.detail;
  SubmitOutcome o;
  ASSERT_TRUE(client_->Submit(Job("gone", 4), &o, kTimeoutMs).ok());
  EXPECT_FALSE(o.accepted);
  EXPECT_EQ(o.rejection.code, ErrorCode::kUnknownModel);
  ASSERT_TRUE(admin->Operate(UnloadModel{0, "tiny", -1}, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kUnknownModel);
  EXPECT_EQ(harness_->Load(model_dir_->path() + "/tiny", "tiny", 4), ErrorCode::kNone);
  Ran again = RunJob(Job("back", 3));
  EXPECT_EQ(again.finished.reason, FinishReason::kLength);
}

TEST_F(JobPathTest, LoadStreamsProgressAndRefusesBadDirectories) {
  auto admin = harness_->NewAdminClient();
  LoadModel load;
  load.path = model_dir_->path() + "/tiny";
  load.name = "tiny2";
  int progress = 0;
  uint64_t last_done = 0, total = 0;
  OperationResult r;
  ASSERT_TRUE(admin
                  ->Operate(load,
                            [&](const LoadProgress& p) {
                              ++progress;
                              EXPECT_GE(p.bytes_done, last_done);
                              last_done = p.bytes_done;
                              total = p.bytes_total;
                            },
                            &r, kTimeoutMs)
                  .ok());
  EXPECT_EQ(r.code, ErrorCode::kNone) << r.detail;
  EXPECT_GT(progress, 0);
  EXPECT_EQ(last_done, total);
  load.name = "missing";
  load.path = "/nonexistent/model";
  ASSERT_TRUE(admin->Operate(load, nullptr, &r, kTimeoutMs).ok());
  EXPECT_NE(r.code, ErrorCode::kNone);
  EXPECT_NE(r.detail.find("config.json"), std::string::npos) << r.detail;
  load.name = "tiny";  // Taken.
  load.path = model_dir_->path() + "/tiny";
  ASSERT_TRUE(admin->Operate(load, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kAlreadyExists);
}

TEST_F(JobPathTest, ShapeOnlyModelStreamsSyntheticTokens) {
  TempDir dir;
  ASSERT_TRUE(WriteShapeOnlyModel(dir.path() + "/shape"));
  ASSERT_EQ(harness_->Load(dir.path() + "/shape", "shape", 4), ErrorCode::kNone);
  SubmitJob j;
  j.model = "shape";
  j.prompt_tokens = {1, 2, 3};
  j.max_tokens = 9;
  Ran r = RunJob(j);
  ASSERT_TRUE(r.outcome.accepted) << r.outcome.rejection.detail;
  EXPECT_EQ(r.tokens.size(), 9u);
  EXPECT_GT(r.finished.timings.device_ns, 0);
}

TEST_F(JobPathTest, DrainRefusesNewJobsAndFinishesAcceptedOnes) {
  SubmitOutcome running;
  ASSERT_TRUE(client_->Submit(Job("before drain", 30), &running, kTimeoutMs).ok());
  ASSERT_TRUE(running.accepted);
  auto admin = harness_->NewAdminClient();
  OperationResult r;
  ASSERT_TRUE(admin->Operate(Drain{}, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kNone);
  SubmitOutcome refused;
  ASSERT_TRUE(client_->Submit(Job("after drain", 3), &refused, kTimeoutMs).ok());
  EXPECT_FALSE(refused.accepted);
  EXPECT_EQ(refused.rejection.code, ErrorCode::kDraining);
  while (true) {
    JobMessage m;
    ASSERT_TRUE(client_->Receive(&m, kTimeoutMs).ok());
    if (auto* f = std::get_if<JobFinished>(&m)) {
      EXPECT_EQ(f->job_id, running.accepted_reply.job_id);
      EXPECT_EQ(f->reason, FinishReason::kLength);
      EXPECT_EQ(f->completion_tokens, 30u);
      break;
    }
  }
}

// The demo preset's weights encode a bigram model of mkmodel's built-in English and code sample:
// through the real forward pass on the board, its output must be that sample's kind of text.
TEST(DemoModelTest, ProducesPrintableTextThroughTheRealForwardPass) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/demo", "demo", 1));
  DaemonHarness h;
  ASSERT_EQ(h.Load(dir.path() + "/demo", "demo", 4), ErrorCode::kNone);
  auto client = h.NewJobClient();
  SubmitJob j;
  j.model = "demo";
  j.prompt_text = "The quick brown";
  j.max_tokens = 40;
  std::string text;
  SubmitOutcome o;
  JobFinished f;
  ASSERT_TRUE(client->Run(j, [&](const TokenChunk& c) { text += c.text; }, &o, &f, 30000).ok());
  ASSERT_TRUE(o.accepted);
  EXPECT_EQ(f.completion_tokens, 40u);
  ASSERT_GT(text.size(), 40u);  // Merged tokens: more than one byte each on average.
  for (char c : text) {
    EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << "byte " << int(c) << " in: " << text;
  }
  EXPECT_NE(text.find(' '), std::string::npos) << text;
}

// Real-time pacing: each Step lasts at least its modeled device time, so a job can never finish
// faster than the wafer it runs on would have produced it (a lower bound; never an upper one).
TEST(PacingTest, RealtimeBoardTakesAtLeastTheModeledDeviceTime) {
  TempDir dir;
  ASSERT_TRUE(WriteShapeOnlyModel(dir.path() + "/shape"));
  DaemonHarness h([](DaemonConfig& c) { c.boards[0].pacing = "realtime"; });
  ASSERT_EQ(h.Load(dir.path() + "/shape", "shape", 4), ErrorCode::kNone);
  auto client = h.NewJobClient();
  SubmitJob j;
  j.model = "shape";
  j.prompt_tokens = {1, 2, 3, 4};
  j.max_tokens = 200;
  SubmitOutcome o;
  JobFinished f;
  ASSERT_TRUE(client->Run(j, [](const TokenChunk&) {}, &o, &f, 30000).ok());
  ASSERT_TRUE(o.accepted);
  EXPECT_EQ(f.completion_tokens, 200u);
  EXPECT_GT(f.timings.device_ns, 0);
  EXPECT_GE(f.timings.total_ns, f.timings.device_ns);
}

}  // namespace
}  // namespace wafer::testing

// A model loaded as several replicas, across a real daemon and two embedded boards: a second load
// of a name adds a replica on another board (status lists each, capacity sums their slots), more
// jobs than one replica's slots run on both, a job evacuated from one replica's board finishes on
// the other with the tokens of an undisturbed run, submissions are refused only when every
// replica's board is drained, and one unload removes every replica. Routing: jobs go to the
// least loaded replica; capacity and metrics are per replica; one replica can be unloaded alone.
#include <algorithm>
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"
#include "tests/http_get.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 60000;

// Two embedded boards; real-time pacing, so that jobs are still running when the test looks.
// `store` (when not empty) is the job store's path, for a test that restarts the daemon.
std::unique_ptr<DaemonHarness> TwoBoards(const std::string& store = "") {
  return std::make_unique<DaemonHarness>([store](DaemonConfig& c) {
    if (!store.empty()) c.store.path = store;
    c.boards.resize(2);
    for (size_t i = 0; i < c.boards.size(); ++i) {
      c.boards[i].endpoint = "inproc://replicas-board" + std::to_string(i);
      c.boards[i].pacing = "realtime";
    }
  });
}

OperationResult Operate(DaemonHarness& h, const AdminMessage& request) {
  OperationResult r;
  auto admin = h.NewAdminClient();
  EXPECT_TRUE(IsOk(admin->Operate(request, nullptr, &r, kTimeoutMs)));
  return r;
}

OperationResult LoadOn(DaemonHarness& h, const std::string& path, uint32_t board, uint32_t slots) {
  LoadModel load;
  load.path = path;
  load.name = "tiny";
  load.board = board;
  load.slots = slots;
  return Operate(h, load);
}

StatusReply Status(DaemonHarness& h) {
  StatusReply r;
  auto admin = h.NewAdminClient();
  EXPECT_TRUE(IsOk(admin->QueryStatus(&r, kTimeoutMs)));
  return r;
}

// Jobs running on the replica whose first board is `board` (-1: no such replica).
int RunningOn(const StatusReply& s, uint32_t board) {
  for (const ModelInfo& m : s.models) {
    if (m.board == board) return static_cast<int>(m.slots_used);
  }
  return -1;
}

// A greedy job on "tiny" streaming on a thread of its own.
struct Stream : GreedyStream {
  Stream(DaemonHarness& h, uint32_t max_tokens) : GreedyStream(h, "tiny", max_tokens, kTimeoutMs) {}
};

SubmitJob Greedy(uint32_t max_tokens) { return GreedyJob("tiny", max_tokens); }

template <typename Pred>
StatusReply WaitFor(DaemonHarness& h, Pred pred) {
  StatusReply s;
  for (int i = 0; i < 5000; ++i) {
    s = Status(h);
    if (pred(s)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return s;
}

TEST(ReplicasTest, ASecondLoadAddsAReplicaAndBothTakeWork) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  ASSERT_TRUE(WriteModel(dir.path() + "/other", "tiny", 6));
  auto h = TwoBoards();
  ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 0, 2).code, ErrorCode::kNone);
  const OperationResult again = LoadOn(*h, dir.path() + "/tiny", 0, 2);
  EXPECT_EQ(again.code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(again.detail, "model 'tiny' is already loaded on board 0");
  const OperationResult other = LoadOn(*h, dir.path() + "/other", 1, 2);
  EXPECT_EQ(other.code, ErrorCode::kAlreadyExists);
  EXPECT_NE(other.detail.find("already loaded from " + dir.path() + "/tiny"), std::string::npos)
      << other.detail;
  ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 1, 2).code, ErrorCode::kNone);

  StatusReply s = Status(*h);
  ASSERT_EQ(s.models.size(), 2u);
  EXPECT_EQ(s.models[0].name, "tiny");
  EXPECT_EQ(s.models[0].boards, std::vector<uint32_t>{0});
  EXPECT_EQ(s.models[1].name, "tiny");
  EXPECT_EQ(s.models[1].boards, std::vector<uint32_t>{1});
  auto client = h->NewJobClient();
  CapacityReply capacity;
  ASSERT_TRUE(client->QueryCapacity(&capacity, kTimeoutMs).ok());
  ASSERT_EQ(capacity.models.size(), 1u);
  EXPECT_EQ(capacity.models[0].total_slots, 4u);
  EXPECT_EQ(capacity.models[0].free_slots, 4u);

  // Five jobs, two slots per replica: both replicas run two, one waits.
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < 5; ++i) streams.push_back(std::make_unique<Stream>(*h, 400));
  // All five submitted (the streams submit on threads of their own): four run, one waits.
  s = WaitFor(*h, [](const StatusReply& r) { return r.jobs_running == 4 && r.jobs_queued == 1; });
  EXPECT_EQ(s.jobs_running, 4u);
  EXPECT_EQ(s.jobs_queued, 1u);
  EXPECT_EQ(RunningOn(s, 0), 2);
  EXPECT_EQ(RunningOn(s, 1), 2);
  for (auto& stream : streams) stream->thread.join();
  for (auto& stream : streams) {
    ASSERT_TRUE(stream->outcome.accepted);
    EXPECT_EQ(stream->finished.reason, FinishReason::kLength);
    EXPECT_EQ(stream->tokens, streams[0]->tokens);  // The same greedy tokens on either board.
  }
  s = Status(*h);
  EXPECT_GT(s.boards[0].steps, 0u);
  EXPECT_GT(s.boards[1].steps, 0u);

  // One unload removes every replica and frees both boards.
  UnloadModel unload;
  unload.name = "tiny";
  EXPECT_EQ(Operate(*h, unload).code, ErrorCode::kNone);
  s = Status(*h);
  EXPECT_TRUE(s.models.empty());
  EXPECT_EQ(Operate(*h, unload).code, ErrorCode::kUnknownModel);
}

TEST(ReplicasTest, AnEvacuatedJobFinishesOnTheOtherReplicaWithTheSameTokens) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  auto h = TwoBoards();
  ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 0, 4).code, ErrorCode::kNone);
  ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 1, 4).code, ErrorCode::kNone);
  constexpr uint32_t kTokens = 1000;
  const std::vector<uint32_t> reference = GreedyReference(*h, "tiny", kTokens, kTimeoutMs);
  ASSERT_EQ(reference.size(), kTokens);

  Stream stream(*h, kTokens);
  StatusReply s = WaitFor(*h, [&](const StatusReply&) { return stream.streamed.load() > 0; });
  ASSERT_GT(stream.streamed.load(), 0u);
  s = Status(*h);
  ASSERT_EQ(s.jobs_running, 1u);
  const uint32_t from = RunningOn(s, 0) == 1 ? 0 : 1;
  const uint32_t to = 1 - from;
  EXPECT_EQ(Operate(*h, DrainBoard{0, from, /*evacuate=*/true, false}).detail,
            "board " + std::to_string(from) + " drained: operator (evacuate)");
  // It moves to the other replica without an undrain.
  s = WaitFor(*h, [&](const StatusReply& r) {
    return RunningOn(r, to) == 1 || stream.streamed.load() >= kTokens;
  });
  const uint32_t at_move = stream.streamed.load();
  EXPECT_EQ(RunningOn(s, to), 1) << "the job finished before it moved (streamed " << at_move
                                 << ")";
  EXPECT_EQ(RunningOn(s, from), 0);
  EXPECT_LT(at_move, kTokens);

  // While one replica's board is drained, the other takes submissions; with both drained, the
  // model refuses them.
  auto client = h->NewJobClient();
  SubmitOutcome outcome;
  JobFinished finished;
  const auto ignore = [](const TokenChunk&) {};
  ASSERT_TRUE(client->Run(Greedy(4), ignore, &outcome, &finished, kTimeoutMs).ok());
  EXPECT_TRUE(outcome.accepted);
  stream.thread.join();
  ASSERT_TRUE(stream.outcome.accepted);
  EXPECT_EQ(stream.finished.reason, FinishReason::kLength);
  EXPECT_EQ(stream.tokens, reference);  // Recomputed from prompt + output on the other board.

  EXPECT_EQ(Operate(*h, DrainBoard{0, to, false, false}).code, ErrorCode::kNone);
  ASSERT_TRUE(client->Run(Greedy(4), ignore, &outcome, &finished, kTimeoutMs).ok());
  ASSERT_FALSE(outcome.accepted);
  EXPECT_EQ(outcome.rejection.code, ErrorCode::kModelNotReady);
  EXPECT_NE(outcome.rejection.detail.find("drained: operator"), std::string::npos)
      << outcome.rejection.detail;
  EXPECT_EQ(Operate(*h, DrainBoard{0, from, false, true}).detail,
            "board " + std::to_string(from) + " takes work");
  ASSERT_TRUE(client->Run(Greedy(4), ignore, &outcome, &finished, kTimeoutMs).ok());
  EXPECT_TRUE(outcome.accepted);
  std::printf("moved from board %u to %u after %u of %u tokens; same tokens\n", from, to,
              at_move, kTokens);
}

TEST(ReplicasTest, ARestartLoadsEveryReplicaAgain) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  const std::string store = dir.path() + "/jobs.db";
  {
    auto h = TwoBoards(store);
    ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 0, 2).code, ErrorCode::kNone);
    ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 1, 3).code, ErrorCode::kNone);
  }
  auto h = TwoBoards(store);
  const StatusReply s = WaitFor(*h, [](const StatusReply& r) {
    return r.models.size() == 2 && r.models[0].state == ModelState::kReady &&
           r.models[1].state == ModelState::kReady;
  });
  ASSERT_EQ(s.models.size(), 2u);
  EXPECT_EQ(s.models[0].state, ModelState::kReady);
  EXPECT_EQ(s.models[1].state, ModelState::kReady);
  std::vector<std::pair<uint32_t, uint32_t>> replicas;  // (board, slots)
  for (const ModelInfo& m : s.models) {
    EXPECT_EQ(m.name, "tiny");
    replicas.emplace_back(m.board, m.slots);
  }
  std::sort(replicas.begin(), replicas.end());
  EXPECT_EQ(replicas, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 2}, {1, 3}}));
}

// The replica entry of `capacity`'s only model whose first board is `board`.
const ReplicaCapacity* ReplicaOn(const CapacityReply& capacity, uint32_t board) {
  if (capacity.models.size() != 1) return nullptr;
  for (const ReplicaCapacity& r : capacity.models[0].replicas) {
    if (!r.boards.empty() && r.boards[0] == board) return &r;
  }
  return nullptr;
}

// Waits (bounded) until /metrics shows `text` (or, with `shown` false, no longer shows it); the
// per-replica gauges are set a few times a second.
bool MetricsShow(DaemonHarness& h, const std::string& text, bool shown = true) {
  for (int i = 0; i < 100; ++i) {
    const std::string metrics = HttpGet(h.daemon().metrics_port(), "/metrics");
    if ((metrics.find(text) != std::string::npos) == shown) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(ReplicasTest, JobsGoToTheLeastLoadedReplicaAndCapacityAndMetricsArePerReplica) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  auto h = TwoBoards();
  ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 0, 4).code, ErrorCode::kNone);
  ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 1, 4).code, ErrorCode::kNone);

  // Two jobs, one after the other, each with room on either replica: the second goes to the
  // replica the first left idle (the first board to plan would otherwise take both).
  Stream first(*h, 1000);
  WaitFor(*h, [&](const StatusReply&) { return first.streamed.load() > 0; });
  Stream second(*h, 1000);
  StatusReply s = WaitFor(*h, [&](const StatusReply&) { return second.streamed.load() > 0; });
  ASSERT_EQ(s.jobs_running, 2u);
  EXPECT_EQ(RunningOn(s, 0), 1);
  EXPECT_EQ(RunningOn(s, 1), 1);

  auto client = h->NewJobClient();
  CapacityReply capacity;
  ASSERT_TRUE(client->QueryCapacity(&capacity, kTimeoutMs).ok());
  ASSERT_NE(ReplicaOn(capacity, 0), nullptr);
  ASSERT_NE(ReplicaOn(capacity, 1), nullptr);
  EXPECT_EQ(capacity.models[0].replicas.size(), 2u);
  for (uint32_t board : {0u, 1u}) {
    const ReplicaCapacity& r = *ReplicaOn(capacity, board);
    EXPECT_EQ(r.boards, std::vector<uint32_t>{board});
    EXPECT_EQ(r.total_slots, 4u);
    EXPECT_EQ(r.running, 1u);
    EXPECT_EQ(r.free_slots, 3u);
    EXPECT_TRUE(r.serving);
  }
  EXPECT_EQ(capacity.models[0].free_slots, 6u);
  // A drained replica offers no slot, and says why it takes none.
  EXPECT_EQ(Operate(*h, DrainBoard{0, 1, false, false}).code, ErrorCode::kNone);
  ASSERT_TRUE(client->QueryCapacity(&capacity, kTimeoutMs).ok());
  ASSERT_NE(ReplicaOn(capacity, 1), nullptr);
  EXPECT_FALSE(ReplicaOn(capacity, 1)->serving);
  EXPECT_EQ(ReplicaOn(capacity, 1)->free_slots, 0u);
  EXPECT_EQ(capacity.models[0].free_slots, 3u);
  EXPECT_TRUE(capacity.models[0].ready);

  EXPECT_TRUE(MetricsShow(*h, "wafer_replica_serving{board=\"1\",model=\"tiny\"} 0"));
  EXPECT_TRUE(MetricsShow(*h, "wafer_replica_serving{board=\"0\",model=\"tiny\"} 1"));
  EXPECT_TRUE(MetricsShow(*h, "wafer_replica_slots{board=\"1\",model=\"tiny\"} 4"));
  first.thread.join();
  second.thread.join();
  EXPECT_EQ(first.tokens, second.tokens);
  EXPECT_TRUE(MetricsShow(*h, "wafer_replica_jobs_running{board=\"0\",model=\"tiny\"} 0"));
  // Each replica streamed one job's tokens.
  const std::string metrics = HttpGet(h->daemon().metrics_port(), "/metrics");
  for (const char* line : {"wafer_replica_tokens_total{board=\"0\",model=\"tiny\"} 1000",
                           "wafer_replica_tokens_total{board=\"1\",model=\"tiny\"} 1000",
                           "wafer_tokens_generated_total{model=\"tiny\"} 2000"}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line;
  }
}

TEST(ReplicasTest, OneReplicaUnloadsAloneItsJobFinishingThereAndARestartKeepsTheOther) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  const std::string store = dir.path() + "/jobs.db";
  std::vector<uint32_t> reference;
  {
    auto h = TwoBoards(store);
    ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 0, 1).code, ErrorCode::kNone);
    ASSERT_EQ(LoadOn(*h, dir.path() + "/tiny", 1, 1).code, ErrorCode::kNone);
    // One slot per replica: two jobs run, one on each, and a third waits.
    Stream a(*h, 1000);
    Stream b(*h, 1000);
    StatusReply s = WaitFor(*h, [](const StatusReply& r) { return r.jobs_running == 2; });
    ASSERT_EQ(RunningOn(s, 1), 1);
    Stream queued(*h, 20);
    s = WaitFor(*h, [](const StatusReply& r) { return r.jobs_queued == 1; });
    ASSERT_EQ(s.jobs_queued, 1u);

    UnloadModel unload{0, "tiny", 2};
    const OperationResult none = Operate(*h, unload);
    EXPECT_EQ(none.code, ErrorCode::kUnknownModel);
    EXPECT_EQ(none.detail, "model 'tiny' is not loaded on board 2");
    // Answered once the replica is gone: its running job finished on it first.
    unload.board = 1;
    EXPECT_EQ(Operate(*h, unload).code, ErrorCode::kNone);
    s = Status(*h);
    ASSERT_EQ(s.models.size(), 1u);
    EXPECT_EQ(s.models[0].boards, std::vector<uint32_t>{0});
    // The queued job was not ended with the replica: it runs on the one that stays.
    a.thread.join();
    b.thread.join();
    queued.thread.join();
    for (Stream* stream : {&a, &b, &queued}) {
      ASSERT_TRUE(stream->outcome.accepted);
      EXPECT_EQ(stream->finished.reason, FinishReason::kLength);
    }
    EXPECT_EQ(a.tokens, b.tokens);
    reference = a.tokens;
    auto client = h->NewJobClient();
    CapacityReply capacity;
    ASSERT_TRUE(client->QueryCapacity(&capacity, kTimeoutMs).ok());
    ASSERT_EQ(capacity.models.size(), 1u);
    EXPECT_EQ(capacity.models[0].replicas.size(), 1u);
    EXPECT_EQ(capacity.models[0].total_slots, 1u);
    EXPECT_TRUE(MetricsShow(*h, "wafer_replica_slots{board=\"1\"", /*shown=*/false));
    EXPECT_TRUE(MetricsShow(*h, "wafer_replica_slots{board=\"0\",model=\"tiny\"} 1"));
  }
  // The store kept only the replica that stays.
  auto h = TwoBoards(store);
  const StatusReply s = WaitFor(*h, [](const StatusReply& r) {
    return r.models.size() == 1 && r.models[0].state == ModelState::kReady;
  });
  ASSERT_EQ(s.models.size(), 1u);
  EXPECT_EQ(s.models[0].boards, std::vector<uint32_t>{0});
  Stream again(*h, 1000);
  again.thread.join();
  EXPECT_EQ(again.tokens, reference);
}

}  // namespace
}  // namespace wafer::testing

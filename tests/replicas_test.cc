// A model loaded as several replicas, across a real daemon and two embedded boards: a second load
// of a name adds a replica on another board (status lists each, capacity sums their slots), more
// jobs than one replica's slots run on both, a job evacuated from one replica's board finishes on
// the other with the tokens of an undisturbed run, submissions are refused only when every
// replica's board is drained, and one unload removes every replica.
#include <algorithm>
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"

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
  EXPECT_TRUE(admin->Operate(request, nullptr, &r, kTimeoutMs).ok()) << admin->last_error();
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
  EXPECT_TRUE(admin->QueryStatus(&r, kTimeoutMs).ok()) << admin->last_error();
  return r;
}

// Jobs running on the replica whose first board is `board` (-1: no such replica).
int RunningOn(const StatusReply& s, uint32_t board) {
  for (const ModelInfo& m : s.models) {
    if (m.board == board) return static_cast<int>(m.slots_used);
  }
  return -1;
}

SubmitJob Greedy(uint32_t max_tokens) { return GreedyJob("tiny", max_tokens); }

// Runs a job in a thread, collecting its tokens.
struct Stream {
  std::unique_ptr<JobClient> client;
  std::vector<uint32_t> tokens;
  std::atomic<uint32_t> streamed{0};
  SubmitOutcome outcome;
  JobFinished finished;
  std::thread thread;

  Stream(DaemonHarness& h, uint32_t max_tokens) : client(h.NewJobClient()) {
    thread = std::thread([this, max_tokens] {
      EXPECT_TRUE(client
                      ->Run(Greedy(max_tokens),
                            [&](const TokenChunk& c) {
                              tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
                              streamed += c.tokens.size();
                            },
                            &outcome, &finished, kTimeoutMs)
                      .ok())
          << client->last_error();
    });
  }
  ~Stream() {
    if (thread.joinable()) thread.join();
  }
};

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
  std::vector<uint32_t> reference;
  {
    Stream undisturbed(*h, kTokens);
    undisturbed.thread.join();
    reference = undisturbed.tokens;
  }
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

}  // namespace
}  // namespace wafer::testing

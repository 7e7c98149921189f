// Losing a board, its firmware or some of its PEs mid-stream: the daemon re-queues the running
// jobs, brings the model back and the streams continue with exactly the tokens an undisturbed
// run produces (greedy decoding, recomputed from prompt + output so far).
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 30000;

// Collects one job's stream until JobFinished.
struct Stream {
  std::vector<uint32_t> tokens;
  std::vector<uint32_t> seqs;
  JobFinished finished;
};

Stream Collect(JobClient& client, uint64_t job_id) {
  Stream s;
  while (true) {
    JobMessage m;
    EXPECT_TRUE(IsOk(client.Receive(&m, kTimeoutMs)));
    if (auto* c = std::get_if<TokenChunk>(&m); c != nullptr && c->job_id == job_id) {
      s.seqs.push_back(c->seq);
      s.tokens.insert(s.tokens.end(), c->tokens.begin(), c->tokens.end());
    } else if (auto* f = std::get_if<JobFinished>(&m); f != nullptr && f->job_id == job_id) {
      s.finished = *f;
      return s;
    } else if (std::holds_alternative<ErrorReply>(m)) {
      ADD_FAILURE() << "error reply";
      return s;
    }
  }
}

// Waits for the job's first TokenChunk; returns it (empty tokens on failure).
TokenChunk FirstChunk(JobClient& client) {
  JobMessage m;
  do {
    if (HostStatus got = client.Receive(&m, kTimeoutMs); !got.ok()) {
      ADD_FAILURE() << "no first chunk: " << got.error().message;
      return TokenChunk{};
    }
  } while (!std::holds_alternative<TokenChunk>(m));
  return std::get<TokenChunk>(m);
}

// Runs `prompt` on the harness's "tiny" model twice: undisturbed, then with `interrupt` called
// once the first chunk has arrived. Expects the second run to finish by length with the same
// tokens and its chunks numbered without gaps.
void ExpectJobSurvives(DaemonHarness& h, const std::string& prompt, uint32_t max_tokens,
                       const std::function<void(AdminClient&)>& interrupt) {
  auto client = h.NewJobClient();
  SubmitJob j;
  j.model = "tiny";
  j.prompt_text = prompt;
  j.max_tokens = max_tokens;
  SubmitOutcome o;
  ASSERT_TRUE(client->Submit(j, &o, kTimeoutMs).ok());
  ASSERT_TRUE(o.accepted);
  const Stream reference = Collect(*client, o.accepted_reply.job_id);
  ASSERT_EQ(reference.tokens.size(), max_tokens);

  ASSERT_TRUE(client->Submit(j, &o, kTimeoutMs).ok());
  ASSERT_TRUE(o.accepted);
  const TokenChunk first = FirstChunk(*client);
  auto admin = h.NewAdminClient();
  interrupt(*admin);

  const Stream rest = Collect(*client, o.accepted_reply.job_id);
  std::vector<uint32_t> all = first.tokens;
  all.insert(all.end(), rest.tokens.begin(), rest.tokens.end());
  EXPECT_EQ(rest.finished.reason, FinishReason::kLength) << rest.finished.detail;
  EXPECT_EQ(all, reference.tokens);
  for (size_t i = 0; i < rest.seqs.size(); ++i) EXPECT_EQ(rest.seqs[i], i + 1);
  StatusReply st;
  ASSERT_TRUE(admin->QueryStatus(&st, kTimeoutMs).ok());
  ASSERT_EQ(st.models.size(), 1u);
  EXPECT_EQ(st.models[0].state, ModelState::kReady);  // Reloaded by the daemon itself.
}

// True when the board's firmware log holds a record with `code`.
bool LogHas(AdminClient& admin, const std::string& code) {
  BoardLogReply log;
  EXPECT_TRUE(IsOk(admin.ReadBoardLog(0, 0, &log, kTimeoutMs)));
  for (const BoardLogEntry& e : log.records) {
    if (e.code == code) return true;
  }
  return false;
}

TEST(BoardLossTest, ResetBoardRequeuesRunningJobsAndTheyFinishIdentically) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 21));
  DaemonHarness h;
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 4), ErrorCode::kNone);
  ExpectJobSurvives(h, "The board will be reset while this runs", 900, [](AdminClient& admin) {
    OperationResult reset;
    ASSERT_TRUE(admin.Operate(ResetBoard{0, 0}, nullptr, &reset, kTimeoutMs).ok());
    EXPECT_EQ(reset.code, ErrorCode::kNone) << reset.detail;
  });
}

// The watchdog: a firmware hang (injected through the admin socket) stops heartbeats and step
// replies; the daemon resets the board, boots it and reloads the model.
TEST(BoardLossTest, HungFirmwareIsResetAndTheJobCompletes) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 31));
  DaemonHarness h([](DaemonConfig& c) { c.boards[0].timeout_ms = 300; });
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 2), ErrorCode::kNone);
  ExpectJobSurvives(h, "a hang is coming", 1000, [](AdminClient& admin) {
    OperationResult r;
    ASSERT_TRUE(admin.Operate(InjectFault{0, 0, "firmware_hang", 0, 0, 0, 0}, nullptr, &r,
                              kTimeoutMs).ok());
    EXPECT_EQ(r.code, ErrorCode::kNone) << r.detail;
  });
  auto admin = h.NewAdminClient();
  EXPECT_TRUE(LogHas(*admin, "kFaultInjected"));  // The log survives the reset.
  OperationResult r;  // An unknown fault kind is a typed refusal.
  ASSERT_TRUE(
      admin->Operate(InjectFault{0, 0, "gremlins", 0, 0, 0, 0}, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kInvalidArgument);
}

// A PE holding weights stops: the board remaps it to a spare and refuses the model's steps
// (DATA_LOSS); the daemon re-stages the model.
// The board remaps the PE and reports which tensors it held; the daemon re-stages only those
// (the simulator really corrupts the lost share, so identical tokens prove the repair).
TEST(BoardLossTest, FailedPeIsRepairedInPlaceAndTheJobCompletes) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 41));
  DaemonHarness h;
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 2), ErrorCode::kNone);
  ExpectJobSurvives(h, "a PE is about to fail", 1000, [](AdminClient& admin) {
    OperationResult r;
    // The first PE of the fabric holds the start of the first tensor staged (the embedding).
    ASSERT_TRUE(admin.Operate(InjectFault{0, 0, "pe_stop", 0, 0, 0, 0}, nullptr, &r,
                              kTimeoutMs).ok());
    EXPECT_EQ(r.code, ErrorCode::kNone) << r.detail;
  });
  auto admin = h.NewAdminClient();
  EXPECT_TRUE(LogHas(*admin, "kPeFailed"));
  EXPECT_TRUE(LogHas(*admin, "kModelRepaired"));  // Repaired, not reloaded.
}

// An unload waiting for its last jobs when the board is reset: the jobs end with a typed error
// and the unload completes (it must not wait forever for jobs that can no longer run).
TEST(BoardLossTest, UnloadInProgressCompletesWhenTheBoardIsReset) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 51));
  DaemonHarness h;
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 2), ErrorCode::kNone);
  auto client = h.NewJobClient();
  SubmitJob j;
  j.model = "tiny";
  j.prompt_text = "unload me";
  j.max_tokens = 1000;
  SubmitOutcome o;
  ASSERT_TRUE(client->Submit(j, &o, 30000).ok());
  ASSERT_TRUE(o.accepted);
  FirstChunk(*client);

  OperationResult unload;
  HostStatus unload_status;
  std::thread unloader([&] {
    auto admin = h.NewAdminClient();
    unload_status = admin->Operate(UnloadModel{0, "tiny", -1}, nullptr, &unload, 30000);
  });
  // Wait until the daemon has started the unload, then reset the board under it.
  auto admin = h.NewAdminClient();
  for (int i = 0; i < 200; ++i) {
    StatusReply st;
    ASSERT_TRUE(admin->QueryStatus(&st, 30000).ok());
    if (st.models.empty() || st.models[0].state == ModelState::kUnloading) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  OperationResult reset;
  ASSERT_TRUE(admin->Operate(ResetBoard{0, 0}, nullptr, &reset, 30000).ok());
  unloader.join();
  ASSERT_TRUE(unload_status.ok());
  EXPECT_EQ(unload.code, ErrorCode::kNone) << unload.detail;
  const JobFinished finished = Collect(*client, o.accepted_reply.job_id).finished;
  // Either the job outran the unload (length) or the reset ended it with a typed error.
  if (finished.reason != FinishReason::kLength) {
    EXPECT_EQ(finished.reason, FinishReason::kError);
    EXPECT_EQ(finished.error_code, ErrorCode::kModelNotReady) << finished.detail;
  }
  StatusReply st;
  ASSERT_TRUE(admin->QueryStatus(&st, 30000).ok());
  EXPECT_TRUE(st.models.empty());
}

}  // namespace
}  // namespace wafer::testing

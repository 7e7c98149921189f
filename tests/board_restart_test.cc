// A wafer-sim process that dies and is back on its endpoint before waferd's link times out: found
// by the chaos test (tests/chaos_test.cc, seeds 2, 4, 5, 6, 9), fixed in the board worker
// (host/boards/board_worker.cc), pinned here.
//
// ZeroMQ reconnects the board link silently, so waferd sees no link failure; the board then
// answers from power-on, with none of our models. Before the fix the board stayed "resetting"
// and its model "failed" until waferd restarted, and Steps that reached the fresh firmware failed
// their jobs (FAILED_PRECONDITION) instead of re-queuing them. Now the board worker treats a
// board that has left the ready state behind its back as lost (PollTelemetry; and a Step that
// fails on such a board is UNAVAILABLE, see BoardStillReady), as it does an InjectFault that
// gets no answer: its jobs are re-queued, the board is booted again and its models reloaded.
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "host/client/wafer_client.h"
#include "tests/child_process.h"
#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"
#include "tests/http_get.h"
#include "tests/slow_preset.h"

namespace wafer::testing {
namespace {

using namespace std::chrono_literals;

const std::string kBin = WAFER_BIN_DIR;

// A waferd process with one board, a wafer-sim process on an ipc:// endpoint that the test may
// kill and start again, and the model "tiny" on it.
class QuickBoardRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteSlowPreset(dir_.path() + "/slow.yaml"));
    ASSERT_TRUE(WriteModel(dir_.path() + "/tiny", "tiny", 5));
    job_ep_ = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
    admin_ep_ = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
    board_ep_ = "ipc://" + dir_.path() + "/board0.sock";
    std::ofstream(dir_.path() + "/waferd.yaml")
        << "job_endpoint: " << job_ep_ << "\nadmin_endpoint: " << admin_ep_
        << "\nmetrics_address: \"\"\ndrain_timeout_ms: 0\n"
        << "store: {path: " << dir_.path() << "/jobs.db}\n"
        << "boards:\n  - endpoint: " << board_ep_ << "\n    timeout_ms: 500\n"
        << "models:\n  - {name: tiny, path: " << dir_.path() << "/tiny, board: 0, slots: 8}\n";
    StartSim();
    waferd_.Start({kBin + "/waferd", "--config", dir_.path() + "/waferd.yaml"},
                  dir_.path() + "/waferd.log");
    ASSERT_TRUE(ModelReady(30000)) << WaferdLog();
  }
  void StartSim() {
    sim_.Start({kBin + "/wafer-sim", "--endpoint", board_ep_, "--preset",
                dir_.path() + "/slow.yaml", "--pacing", "realtime"},
               dir_.path() + "/sim." + std::to_string(++sim_starts_) + ".log");
  }
  std::string WaferdLog() const { return ReadWholeFile(dir_.path() + "/waferd.log"); }
  // Polls until the model is ready (true) or `ms` pass.
  bool ModelReady(int ms) {
    for (int i = 0; i < ms / 100; ++i) {
      auto admin = host::AdminClient::Connect(admin_ep_);
      host::StatusReply status;
      if (admin.ok() && (*admin)->QueryStatus(&status, 500).ok() && status.models.size() == 1 &&
          status.models[0].state == host::ModelState::kReady) {
        return true;
      }
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }
  // Runs a short job to its end; returns the JobFinished (reason kError when it did not run).
  host::JobFinished RunOne(host::JobClient& client, uint32_t max_tokens) {
    host::SubmitJob job;
    job.model = "tiny";
    job.prompt_tokens = {1, 2, 3};
    job.max_tokens = max_tokens;
    host::SubmitOutcome outcome;
    host::JobFinished finished;
    finished.reason = host::FinishReason::kError;
    HostStatus s = client.RunWithRetry(job, nullptr, &outcome, &finished);
    EXPECT_TRUE(s.ok() && outcome.accepted)
        << Describe(s) << " "
        << host::ErrorCodeName(outcome.rejection.code) << " " << outcome.rejection.detail;
    EXPECT_EQ(finished.reason, host::FinishReason::kLength)
        << host::FinishReasonName(finished.reason) << " "
        << host::ErrorCodeName(finished.error_code) << " " << finished.detail << "\n"
        << WaferdLog();
    return finished;
  }

  TempDir dir_;
  std::string job_ep_, admin_ep_, board_ep_;
  ChildProcess waferd_, sim_;
  int sim_starts_ = 0;
};

TEST_F(QuickBoardRestartTest, IdleWaferSimKilledAndBackAtOnceIsBootedAgain) {
  host::RetryOptions retry;
  retry.total_budget_ms = 8000;
  auto client = host::JobClient::Connect(job_ep_, {}, retry);
  ASSERT_TRUE(client.ok());
  RunOne(**client, 8);
  ASSERT_TRUE(sim_.Kill());
  StartSim();                       // Back before waferd's next look at the board.
  std::this_thread::sleep_for(2s);  // Time for waferd to look at the board again.
  EXPECT_TRUE(ModelReady(10000)) << WaferdLog();
  RunOne(**client, 8);
}

TEST_F(QuickBoardRestartTest, ProcessCrashFaultMidStreamRequeuesTheJobs) {
  host::RetryOptions retry;
  retry.total_budget_ms = 8000;
  auto client = host::JobClient::Connect(job_ep_, {}, retry);
  ASSERT_TRUE(client.ok());
  host::SubmitJob job;
  job.model = "tiny";
  job.prompt_tokens = {4, 5, 6};
  job.max_tokens = 400;
  host::SubmitOutcome outcome;
  std::thread crash([this] {
    std::this_thread::sleep_for(300ms);  // Mid-stream: the job needs about 1 s.
    auto admin = host::AdminClient::Connect(admin_ep_);
    ASSERT_TRUE(admin.ok());
    host::OperationResult r;
    // The board cannot answer: it is gone.
    (void)(*admin)->Operate(host::InjectFault{0, 0, "process_crash", 0, 0, 0, 0}, nullptr, &r,
                            3000);
  });
  host::JobFinished finished;
  std::thread restart([this] {
    // A supervisor brings the process back as soon as it exits.
    for (int i = 0; i < 300 && !sim_.WaitExit(10); ++i) {
    }
    StartSim();
  });
  HostStatus s = (*client)->RunWithRetry(job, nullptr, &outcome, &finished);
  crash.join();
  restart.join();
  ASSERT_TRUE(IsOk(s));
  EXPECT_EQ(finished.reason, host::FinishReason::kLength)
      << host::FinishReasonName(finished.reason) << " " << host::ErrorCodeName(finished.error_code)
      << " " << finished.detail << "\n"
      << WaferdLog();
  EXPECT_TRUE(ModelReady(10000)) << WaferdLog();
}

}  // namespace
}  // namespace wafer::testing

// Heartbeats on the job socket, over real sockets: opt-in by the client's first Heartbeat; the
// daemon then beats too; a client that goes silent has its jobs kept for the grace period (a
// resume from a new connection saves them), then they end kAbandoned; a client that never sent
// a heartbeat is never judged.
#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "host/client/wafer_client.h"
#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"
#include "tests/http_get.h"

namespace wafer::testing {
namespace {

using host::ErrorCode;
using host::FinishReason;
using host::JobMessage;

class HeartbeatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteModel(dir_.path() + "/tiny", "tiny", 3));
    // Real-time pacing: a job of 1,000 tokens takes about 100 ms of the board, and with one
    // slot the jobs run one after another. The heartbeat periods are short beside that.
    harness_ = std::make_unique<DaemonHarness>([](host::DaemonConfig& c) {
      c.boards[0].pacing = "realtime";
      c.heartbeat.interval_ms = 100;
      c.heartbeat.timeout_ms = 150;
      c.heartbeat.grace_ms = 100;
    });
    ASSERT_EQ(harness_->Load(dir_.path() + "/tiny", "tiny", 1), ErrorCode::kNone);
    // Jobs the tested one waits behind (about 3 s of the board): it is unfinished long after
    // timeout + grace. Their client never heartbeats, so it is never judged.
    blockers_ = harness_->NewJobClient();
    for (int i = 0; i < 30; ++i) Submit(*blockers_);
  }

  static host::SubmitJob LongJob() {
    host::SubmitJob s;
    s.model = "tiny";
    s.prompt_tokens = {1, 2, 3};
    s.max_tokens = 1000;
    s.want_text = false;
    return s;
  }

  uint64_t Submit(host::JobClient& client) {
    host::SubmitOutcome outcome;
    HostStatus s = client.Submit(LongJob(), &outcome, 5000);
    EXPECT_TRUE(s.ok()) << Describe(s);
    EXPECT_TRUE(outcome.accepted) << outcome.rejection.detail;
    return outcome.accepted_reply.job_id;
  }

  // Reads `client` until the JobFinished of `job` (chunks of it are skipped).
  static host::JobFinished WaitFinished(host::JobClient& client, uint64_t job) {
    while (true) {
      JobMessage m;
      HostStatus s = client.Receive(&m, 30000);
      EXPECT_TRUE(IsOk(s));
      if (!s.ok()) return {};
      if (const auto* f = std::get_if<host::JobFinished>(&m); f != nullptr && f->job_id == job) {
        return *f;
      }
    }
  }

  TempDir dir_;
  std::unique_ptr<DaemonHarness> harness_;
  std::unique_ptr<host::JobClient> blockers_;
};

TEST_F(HeartbeatTest, AnOptedInClientIsBeatenToAndItsSilenceAbandonsItsJobs) {
  auto silent = harness_->NewJobClient();
  ASSERT_TRUE(silent->Send(host::Heartbeat{42, false}).ok());
  // The answer echoes our time; then the daemon beats on its own.
  int answers = 0, beats = 0;
  while (answers == 0 || beats < 2) {
    JobMessage m;
    ASSERT_TRUE(IsOk(silent->Receive(&m, 5000)));
    const auto* beat = std::get_if<host::Heartbeat>(&m);
    ASSERT_NE(beat, nullptr);
    if (beat->is_reply) {
      EXPECT_EQ(beat->sent_ns, 42);
      ++answers;
    } else {
      ++beats;
      // Answering keeps us alive (any message does).
      ASSERT_TRUE(silent->Send(host::Heartbeat{beat->sent_ns, true}).ok());
    }
  }
  const uint64_t job = Submit(*silent);
  // Now the client says nothing more; the job is cancelled for it after timeout + grace.
  auto watcher = harness_->NewJobClient();
  host::JobStatusReply status;
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(watcher->QueryJob(job, &status, 5000).ok());
    if (status.state == host::JobState::kFinished) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(status.state, host::JobState::kFinished) << "never abandoned";
  EXPECT_LT(status.tokens_generated, LongJob().max_tokens);  // It did not just run to its end.
  // Whoever resumes it learns why it ended.
  ASSERT_TRUE(watcher->Send(host::ResumeStream{job, 1u << 30, 0}).ok());
  const host::JobFinished f = WaitFinished(*watcher, job);
  EXPECT_EQ(f.reason, FinishReason::kAbandoned);
  // Counted under its own reason; and the store's work shows on /metrics.
  const std::string metrics = HttpGet(harness_->daemon().metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("wafer_jobs_finished_total{model=\"tiny\",reason=\"abandoned\"} 1"),
            std::string::npos)
      << metrics;
  for (const char* series : {"wafer_job_store_commits_total", "wafer_job_store_fsyncs_total"}) {
    const size_t at = metrics.find(std::string("\n") + series + " ");
    ASSERT_NE(at, std::string::npos) << series;
    EXPECT_GT(std::stod(metrics.substr(at + std::strlen(series) + 2)), 0) << series;
  }
  EXPECT_NE(metrics.find("\nwafer_job_store_stalled 0"), std::string::npos) << metrics;
}

TEST_F(HeartbeatTest, AResumeWithinTheGracePeriodKeepsTheJob) {
  auto first = harness_->NewJobClient();
  ASSERT_TRUE(first->Send(host::Heartbeat{1, false}).ok());
  const uint64_t job = Submit(*first);
  // `first` goes silent (a crashed scheduler); its successor resumes on a new connection
  // straight away, well inside timeout + grace, and the job is its own from then on.
  auto second = harness_->NewJobClient();
  ASSERT_TRUE(second->Send(host::ResumeStream{job, 0, 0}).ok());
  const host::JobFinished f = WaitFinished(*second, job);
  EXPECT_EQ(f.reason, FinishReason::kLength);
  EXPECT_EQ(f.completion_tokens, LongJob().max_tokens);
}

TEST_F(HeartbeatTest, AClientThatNeverSentAHeartbeatIsNeverJudged) {
  auto quiet = harness_->NewJobClient();
  const uint64_t job = Submit(*quiet);
  // Silent far beyond timeout + grace while the job waits and runs; it runs to its end.
  const host::JobFinished f = WaitFinished(*quiet, job);
  EXPECT_EQ(f.reason, FinishReason::kLength);
  EXPECT_EQ(f.completion_tokens, LongJob().max_tokens);
  std::printf("never judged: ended after %.0f ms (heartbeat timeout + grace: 250 ms)\n",
              f.timings.total_ns / 1e6);
}

}  // namespace
}  // namespace wafer::testing

// The oversized-stop_tokens attack of the security issue, tried over real sockets: before, four
// jobs with 250,000 stop tokens each made one board Step larger than the firmware's frame, the
// link timed out, the board went offline and the same Step went out again after every reload.
// Now such a job is refused at the door, and jobs that are each within bounds but together
// would overflow a frame are split over several Steps: the board stays in service and every
// stream completes. Asserts outcomes and counts, never timings.
#include <gtest/gtest.h>

#include "common/net/socket.h"
#include "host/wire/job_codec.h"
#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 60000;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST(StepSizeAttackTest, HugeStopTokenListsAreRefusedAndABystanderStreamsOn) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 3));
  DaemonHarness h;
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 8), ErrorCode::kNone);
  auto attacker = h.NewJobClient();
  for (int i = 0; i < 4; ++i) {
    SubmitJob job;
    job.model = "tiny";
    job.prompt_tokens = {1, 2, 3};
    job.max_tokens = 1000;
    job.stop_tokens.assign(250'000, 4000);  // About 1 MB: under the message limit.
    SubmitOutcome outcome;
    ASSERT_TRUE(IsOk(attacker->Submit(job, &outcome, kTimeoutMs)));
    ASSERT_FALSE(outcome.accepted);
    EXPECT_EQ(outcome.rejection.code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(outcome.rejection.detail, "stop_tokens: 250000 given, at most 64");
  }
  SubmitJob tenant_too_long;
  tenant_too_long.model = "tiny";
  tenant_too_long.prompt_tokens = {1};
  tenant_too_long.max_tokens = 1;
  tenant_too_long.tenant.assign(257, 't');
  SubmitOutcome outcome;
  ASSERT_TRUE(attacker->Submit(tenant_too_long, &outcome, kTimeoutMs).ok());
  EXPECT_EQ(outcome.rejection.code, ErrorCode::kInvalidArgument);

  auto bystander = h.NewJobClient();
  SubmitJob job;
  job.model = "tiny";
  job.prompt_tokens = {1, 2, 3};
  job.max_tokens = 500;
  JobFinished finished;
  uint32_t tokens = 0;
  ASSERT_TRUE(bystander
                  ->Run(job, [&](const TokenChunk& c) { tokens += c.tokens.size(); }, &outcome,
                        &finished, kTimeoutMs)
                  .ok());
  EXPECT_EQ(finished.reason, FinishReason::kLength);
  EXPECT_EQ(tokens, 500u);
}

TEST(StepSizeAttackTest, JobsWithinBoundsThatTogetherOverflowAFrameAreSplitOverSteps) {
  // 256 sequences, each a 512-token prefill chunk with 1,024 stop tokens: about 1.6 MB in one
  // Step, over the board's 1.5 MiB frame. The planner sizes each Step against the frame the
  // board reports in Identify, so they go in several Steps and all of them finish.
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 3));
  DaemonHarness h([](DaemonConfig& c) {
    c.max_stop_tokens = 1024;
    c.steps_in_flight = 1;  // One Step at a time carries every running job.
    // An oversized frame would show as a timeout soon. Under ASan or TSan a Step of 256 prefill
    // chunks takes longer than 3 s on 2 cores by itself (the board went offline at every
    // attempt): give it 30 s there.
    c.boards[0].timeout_ms = kSanitized ? 30000 : 3000;
  });
  constexpr int kJobs = 256;
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", kJobs), ErrorCode::kNone);
  // Sent back to back without waiting for answers, so that the daemon takes them all in one
  // turn of its loop and plans one Step over every one of them.
  zmq::context_t context(1);
  auto socket = net::Socket::Connect(context, net::SocketType::kDealer, h.daemon().job_endpoint(),
                                     net::SocketOptions{});
  ASSERT_TRUE(socket.ok()) << socket.error().message;
  SubmitJob job;
  job.model = "tiny";
  for (uint32_t t = 0; t < 600; ++t) job.prompt_tokens.push_back(1 + t % 200);
  job.max_tokens = 4;
  job.stop_tokens.assign(1024, 4000);  // Outside the vocabulary: never produced.
  for (int i = 0; i < kJobs; ++i) {
    job.request_tag = static_cast<uint64_t>(i + 1);
    ASSERT_EQ((*socket)->Send(net::AsBytes(EncodeJob(job))), net::SendOutcome::kSent);
  }
  int accepted = 0, finished = 0, completed = 0;
  while (finished < kJobs) {
    Result<net::Message> m = (*socket)->Receive(kTimeoutMs);
    ASSERT_TRUE(m.ok()) << finished << " of " << kJobs << " finished";
    HostResult<JobMessage> result = DecodeJob(m->frame(0));
    ASSERT_TRUE(result.ok()) << result.error().message;
    const JobMessage& decoded = *result;
    if (std::holds_alternative<JobAccepted>(decoded)) ++accepted;
    ASSERT_FALSE(std::holds_alternative<JobRejected>(decoded));
    if (const auto* f = std::get_if<JobFinished>(&decoded)) {
      ++finished;
      completed += f->reason == FinishReason::kLength && f->completion_tokens == 4;
    }
  }
  EXPECT_EQ(accepted, kJobs);
  EXPECT_EQ(completed, kJobs);
  StatusReply status;
  auto admin = h.NewAdminClient();
  ASSERT_TRUE(admin->QueryStatus(&status, kTimeoutMs).ok());
  EXPECT_EQ(status.boards[0].state, BoardState::kReady);
  ASSERT_EQ(status.models.size(), 1u);
  EXPECT_EQ(status.models[0].state, ModelState::kReady);  // Never lost, never reloaded.
}

}  // namespace
}  // namespace wafer::testing

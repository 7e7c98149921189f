// The fair policy over real sockets, three tenants on a model with one KV-cache slot, so that
// what the tests assert is the order in which jobs are served, not how long anything takes: a
// blocker holds the slot while the others queue, then is cancelled, and the queue drains one
// job at a time in the policy's order (class, then the tenants' weighted token shares, then
// earliest deadline within a tenant); a full queue sheds a lower class for a higher one and
// refuses with a computed retry-after; a queued job whose deadline passes expires; a running
// batch job is preempted by an interactive one and then finishes with exactly the tokens an
// undisturbed run gives.
#include <chrono>
#include <map>
#include <thread>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"
#include "tests/http_get.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 30000;
constexpr uint8_t kInteractive = 220, kStandard = 150, kBatch = 20;

// gold (weight 2) and silver (weight 1) share the standard class; bronze may use batch only.
void ThreeTenants(DaemonConfig& c) {
  c.boards[0].pacing = "realtime";  // The blocker keeps streaming until it is cancelled.
  TenantConfig gold, silver, bronze;
  gold.name = "gold";
  gold.weight = 2;
  silver.name = "silver";
  bronze.name = "bronze";
  bronze.max_class = "batch";
  c.scheduling.tenants = {gold, silver, bronze};
  c.scheduling.preemption.min_run_ms = 0;
}

SubmitJob Job(const std::string& tenant, uint8_t priority, uint32_t max_tokens,
              std::vector<uint32_t> prompt = {5, 6, 7}) {
  SubmitJob job;
  job.model = "m";
  job.tenant = tenant;
  job.priority = priority;
  job.prompt_tokens = std::move(prompt);
  job.max_tokens = max_tokens;
  return job;
}

class SchedulingTest : public ::testing::Test {
 protected:
  void Start(const std::function<void(DaemonConfig&)>& tweak) {
    ASSERT_TRUE(WriteModel(dir_.path() + "/m", "small", 5));
    harness_ = std::make_unique<DaemonHarness>(tweak);
    ASSERT_EQ(harness_->Load(dir_.path() + "/m", "m", /*slots=*/1), ErrorCode::kNone);
    client_ = harness_->NewJobClient();
  }

  uint64_t Submit(const SubmitJob& job) {
    SubmitOutcome outcome;
    EXPECT_TRUE(IsOk(client_->Submit(job, &outcome, kTimeoutMs)));
    EXPECT_TRUE(outcome.accepted) << ErrorCodeName(outcome.rejection.code) << ": "
                                  << outcome.rejection.detail;
    return outcome.accepted_reply.job_id;
  }

  // Submits a long job of a tenant of its own (whose account the others do not share) and
  // waits for its first chunk: it holds the model's only slot.
  uint64_t StartBlocker() {
    const uint64_t id = Submit(Job("blocker", kStandard, 2000));
    JobMessage m;
    while (client_->Receive(&m, kTimeoutMs).ok()) {
      if (auto* c = std::get_if<TokenChunk>(&m); c != nullptr && c->job_id == id) return id;
    }
    ADD_FAILURE() << "the blocker never streamed";
    return id;
  }

  // Receives until `count` JobFinished have come; returns them in arrival order. Tokens go to
  // `tokens` per job.
  std::vector<JobFinished> Finishes(size_t count,
                                    std::map<uint64_t, std::vector<uint32_t>>* tokens = nullptr) {
    std::vector<JobFinished> out;
    JobMessage m;
    while (out.size() < count && client_->Receive(&m, kTimeoutMs).ok()) {
      if (auto* f = std::get_if<JobFinished>(&m)) out.push_back(*f);
      if (auto* c = std::get_if<TokenChunk>(&m); c != nullptr && tokens != nullptr) {
        std::vector<uint32_t>& t = (*tokens)[c->job_id];
        EXPECT_EQ(c->first_token_index, t.size()) << "a gap or a duplicate in job " << c->job_id;
        t.insert(t.end(), c->tokens.begin(), c->tokens.end());
      }
    }
    EXPECT_EQ(out.size(), count);
    return out;
  }

  void Cancel(uint64_t id) {
    ASSERT_TRUE(client_->Send(CancelJob{id}).ok());
  }

  TempDir dir_;
  std::unique_ptr<DaemonHarness> harness_;
  std::unique_ptr<JobClient> client_;
};

TEST_F(SchedulingTest, ClassesFirstThenWeightedSharesThenEarliestDeadline) {
  Start([](DaemonConfig& c) {
    ThreeTenants(c);
    c.scheduling.preemption.enabled = false;  // The blocker keeps its slot until cancelled.
  });
  const uint64_t blocker = StartBlocker();
  const uint64_t bronze = Submit(Job("bronze", kInteractive, 4));  // Capped to batch.
  const uint64_t s1 = Submit(Job("silver", kStandard, 4));
  const uint64_t s2 = Submit(Job("silver", kStandard, 4));
  SubmitJob urgent = Job("silver", kStandard, 4);
  urgent.ttft_target_ms = 600000;  // Earliest deadline among silver's jobs: first of them.
  const uint64_t s3 = Submit(urgent);
  const uint64_t g1 = Submit(Job("gold", kStandard, 4));
  const uint64_t g2 = Submit(Job("gold", kStandard, 4));
  const uint64_t g3 = Submit(Job("gold", kStandard, 4));
  const uint64_t top = Submit(Job("silver", kInteractive, 4));
  // A cluster scheduler sees each class's queue (and its expected wait) in Capacity.
  ASSERT_TRUE(client_->Send(CapacityQuery{77}).ok());
  JobMessage m;
  CapacityReply capacity;
  while (client_->Receive(&m, kTimeoutMs).ok()) {
    if (auto* c = std::get_if<CapacityReply>(&m)) {
      capacity = *c;
      break;
    }
  }
  ASSERT_EQ(capacity.models.size(), 1u);
  const std::vector<ClassCapacity>& classes = capacity.models[0].classes;
  ASSERT_EQ(classes.size(), 3u);
  EXPECT_EQ(classes[0].name, "interactive");
  EXPECT_EQ(classes[0].queued, 1u);
  EXPECT_EQ(classes[1].queued, 6u);
  EXPECT_EQ(classes[2].queued, 1u);
  EXPECT_FALSE(classes[0].measured);  // No job has finished on the model yet.
  // waferctl capacity shows the same, as JSON for scripts.
  const std::string out = dir_.path() + "/capacity.json";
  ASSERT_EQ(RunProgram({std::string(WAFER_BIN_DIR) + "/waferctl", "--endpoint",
                        harness_->daemon().job_endpoint(), "capacity", "--json"},
                       out),
            0);
  const nlohmann::json printed = nlohmann::json::parse(ReadWholeFile(out));
  ASSERT_EQ(printed["models"].size(), 1u);
  EXPECT_EQ(printed["models"][0]["classes"][1]["name"], "standard");
  EXPECT_EQ(printed["models"][0]["classes"][1]["queued"], 6);
  Cancel(blocker);
  std::vector<uint64_t> order;
  for (const JobFinished& f : Finishes(9)) {
    if (f.job_id != blocker) order.push_back(f.job_id);
  }
  // Interactive first; then standard, where every job costs the same (3 prompt + 2 x 4 output
  // tokens): gold (weight 2) is served two jobs for each of silver's, silver's deadline job
  // first; batch last.
  //   counters (cost / weight): s3 -> silver 11; g1 -> gold 5.5; g2 -> gold 11; tie, silver's
  //   head came first: s1 -> silver 22; g3 -> gold 16.5; s2.
  EXPECT_EQ(order, (std::vector<uint64_t>{top, s3, g1, g2, s1, g3, s2, bronze}));
}

TEST_F(SchedulingTest, AFullQueueShedsALowerClassAndAQueuedJobPastItsDeadlineExpires) {
  Start([](DaemonConfig& c) {
    ThreeTenants(c);
    c.scheduling.model_queue_limit = 3;
  });
  const uint64_t blocker = StartBlocker();
  const uint64_t b1 = Submit(Job("bronze", kBatch, 4));
  const uint64_t b2 = Submit(Job("bronze", kBatch, 4));
  SubmitJob expiring = Job("gold", kStandard, 4);
  expiring.deadline_ms = 300;  // Relative: it passes while the blocker holds the slot.
  const uint64_t expires = Submit(expiring);
  std::vector<JobFinished> first = Finishes(1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].job_id, expires);
  EXPECT_EQ(first[0].reason, FinishReason::kDeadlineExceeded) << FinishReasonName(first[0].reason);

  const uint64_t b3 = Submit(Job("bronze", kBatch, 4));  // The queue is full again: b1 b2 b3.
  // A higher class displaces the newest batch job...
  const uint64_t g = Submit(Job("gold", kStandard, 4));
  std::vector<JobFinished> shed = Finishes(1);
  ASSERT_EQ(shed.size(), 1u);
  EXPECT_EQ(shed[0].job_id, b3);
  EXPECT_EQ(shed[0].reason, FinishReason::kShed) << FinishReasonName(shed[0].reason);
  EXPECT_NE(shed[0].detail.find("displaced"), std::string::npos) << shed[0].detail;
  // ...but a job of the lowest class has nobody to displace: QUEUE_FULL, to retry later.
  SubmitOutcome outcome;
  ASSERT_TRUE(client_->Submit(Job("bronze", kBatch, 4), &outcome, kTimeoutMs).ok());
  EXPECT_FALSE(outcome.accepted);
  EXPECT_EQ(outcome.rejection.code, ErrorCode::kQueueFull) << outcome.rejection.detail;
  EXPECT_GT(outcome.rejection.retry_after_ms, 0u);

  Cancel(blocker);
  std::vector<uint64_t> order;
  for (const JobFinished& f : Finishes(4)) {
    if (f.job_id != blocker) order.push_back(f.job_id);
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{g, b1, b2}));
  // Each counted under its own reason, apart from cancellations; the jobs that never ran are in
  // the class's time-to-first-token histogram too.
  const std::string metrics = HttpGet(harness_->daemon().metrics_port(), "/metrics");
  for (const char* series :
       {"wafer_scheduler_sheds_total{model=\"m\",reason=\"displaced\"} 1",
        "wafer_scheduler_expiries_total{model=\"m\",state=\"queued\"} 1",
        "wafer_jobs_rejected_total{reason=\"QUEUE_FULL\"} 1",
        "wafer_scheduler_time_to_first_token_seconds_count{class=\"batch\",model=\"m\","
        "outcome=\"shed\"} 1",
        "wafer_scheduler_time_to_first_token_seconds_count{class=\"standard\",model=\"m\","
        "outcome=\"expired\"} 1"}) {
    EXPECT_NE(metrics.find(series), std::string::npos) << series;
  }
  // The queue depth per class and tenant is counted a few times a second: wait (bounded) for
  // the empty queue to show.
  const std::string empty = "wafer_scheduler_queued_jobs{class=\"batch\",model=\"m\",tenant=\"bronze\"} 0";
  bool shown = false;
  for (int i = 0; i < 100 && !shown; ++i) {
    shown = HttpGet(harness_->daemon().metrics_port(), "/metrics").find(empty) != std::string::npos;
    if (!shown) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(shown) << empty;
}

TEST_F(SchedulingTest, AnInteractiveJobPreemptsABatchJobWhichThenStreamsOnUnchanged) {
  Start(ThreeTenants);
  const std::vector<uint32_t> prompt = {11, 12, 13, 14};
  constexpr uint32_t kTokens = 120;
  const uint64_t batch = Submit(Job("bronze", kBatch, kTokens, prompt));
  JobMessage m;
  std::map<uint64_t, std::vector<uint32_t>> tokens;
  while (client_->Receive(&m, kTimeoutMs).ok()) {  // It runs: it holds the only slot.
    if (auto* c = std::get_if<TokenChunk>(&m); c != nullptr && c->job_id == batch) {
      tokens[batch] = c->tokens;
      break;
    }
  }
  ASSERT_FALSE(tokens[batch].empty());
  const uint64_t top = Submit(Job("silver", kInteractive, 8));
  std::vector<JobFinished> done = Finishes(2, &tokens);
  ASSERT_EQ(done.size(), 2u);
  // The interactive job took the slot and finished first; the batch job ran on after it.
  EXPECT_EQ(done[0].job_id, top);
  EXPECT_EQ(done[1].job_id, batch);
  EXPECT_EQ(done[1].reason, FinishReason::kLength);
  ASSERT_EQ(tokens[batch].size(), kTokens);

  // An undisturbed run of the same greedy job gives the same tokens.
  const uint64_t again = Submit(Job("bronze", kBatch, kTokens, prompt));
  std::map<uint64_t, std::vector<uint32_t>> reference;
  Finishes(1, &reference);
  EXPECT_EQ(reference[again], tokens[batch]);
  const std::string metrics = HttpGet(harness_->daemon().metrics_port(), "/metrics");
  EXPECT_NE(
      metrics.find("wafer_scheduler_preemptions_total{model=\"m\",reason=\"higher_class\"} 1"),
      std::string::npos);
}

}  // namespace
}  // namespace wafer::testing

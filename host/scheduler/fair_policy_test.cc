#include "host/scheduler/fair_policy.h"

#include <map>

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

constexpr uint32_t kInteractive = 0, kStandard = 1, kBatch = 2;  // The default classes.

QueuedJob Job(uint64_t id, const std::string& tenant, uint32_t cls, int64_t deadline_ns = 0) {
  QueuedJob j;
  j.job_id = id;
  j.model = "m";
  j.tenant = tenant;
  j.priority_class = static_cast<uint8_t>(cls);
  j.accept_seq = id;
  j.accepted_ns = static_cast<int64_t>(id);
  if (deadline_ns != 0) j.order_deadline_ns = deadline_ns;
  return j;
}

// A model with `total` slots of which the jobs in `running` hold some.
class FakeView final : public SchedulerView {
 public:
  explicit FakeView(uint32_t total) : total_(total) {}
  std::vector<RunningJob> Running(const std::string&) const override { return running; }
  uint32_t RunningAtOrBelow(const std::string&, uint32_t cls) const override {
    uint32_t n = 0;
    for (const RunningJob& r : running) n += r.job.priority_class >= cls ? 1 : 0;
    return n;
  }
  ModelSlots Slots(const std::string&) const override {
    const uint32_t used = static_cast<uint32_t>(running.size());
    return ModelSlots{total_, total_ - used, used, 256};
  }
  std::vector<RunningJob> running;

 private:
  uint32_t total_;
};

SchedulingConfig TwoTenants(uint32_t weight_a, uint32_t weight_b) {
  SchedulingConfig c;
  TenantConfig a;
  a.name = "a";
  a.weight = weight_a;
  TenantConfig b;
  b.name = "b";
  b.weight = weight_b;
  c.tenants = {a, b};
  return c;
}

// Pops one job, grants it, serves it `output` tokens and releases it; returns its tenant.
std::string ServeNext(FairPolicy& policy, const FakeView& view, uint32_t output) {
  std::optional<QueuedJob> job = policy.PopNext("m", view);
  if (!job) return "";
  RunningJob r{*job, 0, 0};
  policy.OnGranted(r);
  policy.OnServed(job->job_id, 0, output);
  policy.OnReleased(r);
  return job->tenant;
}

TEST(FairPolicyTest, HigherClassesGoFirstWhateverTheirArrival) {
  FairPolicy policy{SchedulingConfig{}};
  FakeView view(1);
  policy.Push(Job(1, "a", kBatch));
  policy.Push(Job(2, "a", kStandard));
  policy.Push(Job(3, "b", kInteractive));
  EXPECT_EQ(policy.PopNext("m", view)->job_id, 3u);
  EXPECT_EQ(policy.PopNext("m", view)->job_id, 2u);
  EXPECT_EQ(policy.PopNext("m", view)->job_id, 1u);
  EXPECT_FALSE(policy.PopNext("m", view).has_value());
  EXPECT_EQ(policy.size(), 0u);
}

TEST(FairPolicyTest, BackloggedTenantsShareServedTokensByWeight) {
  FairPolicy policy(TwoTenants(1, 2));
  FakeView view(1);
  for (uint64_t i = 1; i <= 60; ++i) policy.Push(Job(i, i % 2 == 0 ? "a" : "b", kStandard));
  std::map<std::string, int> served;
  for (int i = 0; i < 30; ++i) ++served[ServeNext(policy, view, 100)];
  // b (weight 2) gets two jobs of equal cost for each of a's: 20 and 10, within one job.
  EXPECT_NEAR(served["b"], 20, 1);
  EXPECT_NEAR(served["a"], 10, 1);
}

TEST(FairPolicyTest, SharesFollowTokensNotJobs) {
  FairPolicy policy(TwoTenants(1, 1));
  FakeView view(1);
  for (uint64_t i = 1; i <= 40; ++i) policy.Push(Job(i, i % 2 == 0 ? "a" : "b", kBatch));
  // a's jobs are served 300 tokens each, b's 100: b runs three jobs for each of a's.
  std::map<std::string, int> served;
  for (int i = 0; i < 20; ++i) {
    std::optional<QueuedJob> job = policy.PopNext("m", view);
    ASSERT_TRUE(job.has_value());
    RunningJob r{*job, 0, 0};
    policy.OnGranted(r);
    policy.OnServed(job->job_id, 0, job->tenant == "a" ? 300 : 100);
    policy.OnReleased(r);
    ++served[job->tenant];
  }
  EXPECT_NEAR(served["b"], 15, 1);
  EXPECT_NEAR(served["a"], 5, 1);
}

TEST(FairPolicyTest, AnIdleTenantBanksNoCredit) {
  FairPolicy policy(TwoTenants(1, 1));
  FakeView view(1);
  // a is served alone for a long while...
  for (uint64_t i = 1; i <= 50; ++i) policy.Push(Job(i, "a", kBatch));
  for (int i = 0; i < 40; ++i) ASSERT_EQ(ServeNext(policy, view, 100), "a");
  // ...then b arrives: it starts level with a instead of owning the next 40 turns.
  for (uint64_t i = 100; i < 110; ++i) policy.Push(Job(i, "b", kBatch));
  std::map<std::string, int> served;
  for (int i = 0; i < 10; ++i) ++served[ServeNext(policy, view, 100)];
  EXPECT_NEAR(served["a"], 5, 1);
  EXPECT_NEAR(served["b"], 5, 1);
}

TEST(FairPolicyTest, WithinATenantEarliestDeadlineThenArrival) {
  FairPolicy policy{SchedulingConfig{}};
  FakeView view(1);
  policy.Push(Job(1, "a", kStandard));           // No deadline.
  policy.Push(Job(2, "a", kStandard, 5'000));    // Later deadline.
  policy.Push(Job(3, "a", kStandard, 1'000));    // Earliest deadline.
  policy.Push(Job(4, "a", kStandard));           // No deadline, after 1.
  EXPECT_EQ(policy.Position(3), 0u);
  EXPECT_EQ(policy.Position(4), 3u);
  EXPECT_EQ(policy.PopNext("m", view)->job_id, 3u);
  EXPECT_EQ(policy.PopNext("m", view)->job_id, 2u);
  EXPECT_EQ(policy.PopNext("m", view)->job_id, 1u);
  EXPECT_EQ(policy.PopNext("m", view)->job_id, 4u);
}

TEST(FairPolicyTest, ShedsTheNewestJobOfTheLowestClassBelowTheNewcomer) {
  FairPolicy policy{SchedulingConfig{}};
  policy.Push(Job(1, "a", kBatch));
  policy.Push(Job(2, "b", kBatch));
  policy.Push(Job(3, "a", kStandard));
  EXPECT_EQ(policy.ShedCandidate("m", kInteractive)->job_id, 2u);
  EXPECT_EQ(policy.ShedCandidate("m", kStandard)->job_id, 2u);
  EXPECT_FALSE(policy.ShedCandidate("m", kBatch).has_value());  // Nothing below batch.
  policy.Remove(1);
  policy.Remove(2);
  EXPECT_EQ(policy.ShedCandidate("m", kInteractive)->job_id, 3u);
  EXPECT_FALSE(policy.ShedCandidate("m", kStandard).has_value());  // Equal class: never.
  EXPECT_FALSE(policy.ShedCandidate("other", kInteractive).has_value());
}

using Ids = std::vector<uint64_t>;

TEST(FairPolicyTest, PreemptsTheLowestClassThatHasRunLongEnough) {
  SchedulingConfig config;
  config.preemption.min_run_ms = 100;
  FairPolicy policy(config);
  FakeView view(3);
  const int64_t ms = 1'000'000;
  view.running = {RunningJob{Job(10, "x", kStandard), 0, 0},
                  RunningJob{Job(11, "x", kBatch), 1, 0},
                  RunningJob{Job(12, "x", kBatch), 2, 50 * ms}};
  EXPECT_EQ(policy.PreemptCandidates("m", view, 200 * ms), Ids{});  // Nobody waits.
  policy.Push(Job(20, "y", kInteractive));
  // Both batch jobs ran 100 ms: the later-granted one loses less work.
  EXPECT_EQ(policy.PreemptCandidates("m", view, 150 * ms), Ids{12});
  // Only the first has run 100 ms at 120 ms.
  EXPECT_EQ(policy.PreemptCandidates("m", view, 120 * ms), Ids{11});
  EXPECT_EQ(policy.PreemptCandidates("m", view, 60 * ms), Ids{});  // Too soon for all.
  // Three waiting jobs: one victim each, lowest class first; the standard job yields only to
  // the interactive ones.
  policy.Push(Job(21, "y", kInteractive));
  policy.Push(Job(22, "y", kStandard));
  EXPECT_EQ(policy.PreemptCandidates("m", view, 500 * ms), (Ids{12, 11, 10}));
  policy.Remove(20);
  policy.Remove(21);
  EXPECT_EQ(policy.PreemptCandidates("m", view, 500 * ms), Ids{12});
  // A waiting batch job preempts nobody of its own class.
  policy.Remove(22);
  policy.Push(Job(23, "y", kBatch));
  EXPECT_EQ(policy.PreemptCandidates("m", view, 500 * ms), Ids{});
  // A free slot covers the first waiting job: the second one preempts.
  policy.Push(Job(24, "y", kInteractive));
  view.running.pop_back();
  EXPECT_EQ(policy.PreemptCandidates("m", view, 500 * ms), Ids{});
  policy.Push(Job(25, "y", kInteractive));
  EXPECT_EQ(policy.PreemptCandidates("m", view, 500 * ms), Ids{11});
}

TEST(FairPolicyTest, PreemptionRespectsTheClassGapAndCanBeOff) {
  SchedulingConfig config;
  config.preemption.min_run_ms = 0;
  config.preemption.min_class_gap = 2;
  FakeView view(1);
  view.running = {RunningJob{Job(10, "x", kStandard), 0, 0}};
  {
    FairPolicy policy(config);
    policy.Push(Job(20, "y", kInteractive));
    EXPECT_EQ(policy.PreemptCandidates("m", view, 1), Ids{});  // One class apart.
    view.running = {RunningJob{Job(11, "x", kBatch), 0, 0}};
    EXPECT_EQ(policy.PreemptCandidates("m", view, 1), Ids{11});  // Two apart.
  }
  config.preemption.enabled = false;
  FairPolicy off(config);
  off.Push(Job(20, "y", kInteractive));
  EXPECT_EQ(off.PreemptCandidates("m", view, 1), Ids{});
}

TEST(FairPolicyTest, CountsPerClassTenantAndWhatANewcomerWaitsBehind) {
  FairPolicy policy{SchedulingConfig{}};
  policy.Push(Job(1, "a", kInteractive));
  policy.Push(Job(2, "a", kStandard));
  policy.Push(Job(3, "b", kStandard));
  policy.Push(Job(4, "b", kBatch));
  EXPECT_EQ(policy.QueuedInClass("m", kStandard), 2u);
  EXPECT_EQ(policy.QueuedForTenant("b"), 2u);
  EXPECT_EQ(policy.QueuedAhead("m", kInteractive, "c").before, 0u);
  EXPECT_EQ(policy.QueuedAhead("m", kStandard, "a").before, 1u);
  EXPECT_EQ(policy.QueuedAhead("m", kStandard, "a").own, 1u);
  EXPECT_EQ(policy.QueuedAhead("m", kBatch, "a").before, 3u);
  EXPECT_EQ(policy.QueuedAhead("m", kBatch, "a").own, 0u);
  EXPECT_TRUE(policy.QueuedAhead("m", kBatch, "a").shares);
  EXPECT_EQ(policy.Position(3), 2u);  // Behind the interactive job and job 2, accepted before.
  const std::vector<QueuedJob> all = policy.TakeAll("m");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.front().job_id, 1u);  // Acceptance order.
  EXPECT_EQ(all.back().job_id, 4u);
  EXPECT_EQ(policy.size(), 0u);
  EXPECT_EQ(policy.QueuedForTenant("b"), 0u);
}

TEST(FairPolicyTest, PushAnswersThePositionPositionWouldAndCountsPerClassAndTenant) {
  FairPolicy policy{SchedulingConfig{}};
  const QueuedJob jobs[] = {Job(1, "a", kStandard), Job(2, "b", kStandard),
                            Job(3, "a", kStandard, 500), Job(4, "a", kInteractive),
                            Job(5, "b", kBatch), Job(6, "b", kStandard)};
  for (const QueuedJob& job : jobs) {
    const size_t ahead = policy.Push(job);
    EXPECT_EQ(ahead, policy.Position(job.job_id)) << job.job_id;
  }
  SchedulingPolicy::QueueCounts counts;
  policy.CountQueued(&counts);
  EXPECT_EQ(counts.size(), 4u);
  EXPECT_EQ((counts[{"m", kStandard, "a"}]), 2u);
  EXPECT_EQ((counts[{"m", kStandard, "b"}]), 2u);
  EXPECT_EQ((counts[{"m", kInteractive, "a"}]), 1u);
  EXPECT_EQ((counts[{"m", kBatch, "b"}]), 1u);
}

TEST(FairPolicyTest, ForgetsTenantsWithNothingQueuedOrRunning) {
  FairPolicy policy(TwoTenants(1, 1));
  FakeView view(1);
  policy.Push(Job(1, "a", kBatch));
  ServeNext(policy, view, 100);
  // a's account is gone; the class floor keeps its counter, so coming back gains nothing.
  EXPECT_DOUBLE_EQ(policy.Counter(kBatch, "a"), 200.0);
  EXPECT_DOUBLE_EQ(policy.Counter(kBatch, "never-seen"), 200.0);
}

}  // namespace
}  // namespace wafer::host

#include "host/scheduler/scheduler.h"

#include <tuple>

#include <gtest/gtest.h>

#include "host/scheduler/fifo_policy.h"

namespace wafer::host {
namespace {

QueuedJob Job(uint64_t id, const std::string& model, const std::string& tenant = "t") {
  QueuedJob j;
  j.job_id = id;
  j.model = model;
  j.tenant = tenant;
  return j;
}

// Wraps FIFO and records what the scheduler shows and tells a policy.
class RecordingPolicy final : public SchedulingPolicy {
 public:
  size_t Push(const QueuedJob& job) override { return fifo_.Push(job); }
  bool Remove(uint64_t id) override { return fifo_.Remove(id); }
  std::optional<QueuedJob> PopNext(const std::string& model, const SchedulerView& view) override {
    seen_running.push_back(view.Running(model).size());
    seen_free.push_back(view.Slots(model).free);
    return fifo_.PopNext(model, view);
  }
  std::vector<QueuedJob> TakeAll(const std::string& model) override { return fifo_.TakeAll(model); }
  void OnGranted(const RunningJob& job) override { granted.push_back(job.job.job_id); }
  void OnReleased(const RunningJob& job) override { released.push_back(job.job.job_id); }
  size_t size() const override { return fifo_.size(); }
  size_t QueuedFor(const std::string& model) const override { return fifo_.QueuedFor(model); }
  std::optional<size_t> Position(uint64_t id) const override { return fifo_.Position(id); }
  void OnServed(uint64_t id, uint32_t prompt, uint32_t output) override {
    served.push_back({id, prompt, output});
  }
  std::optional<QueuedJob> ShedCandidate(const std::string& model, uint32_t cls) const override {
    return fifo_.ShedCandidate(model, cls);
  }
  std::vector<uint64_t> PreemptCandidates(const std::string& model, const SchedulerView& view,
                                          int64_t now_ns) const override {
    return fifo_.PreemptCandidates(model, view, now_ns);
  }
  size_t QueuedInClass(const std::string& model, uint32_t cls) const override {
    return fifo_.QueuedInClass(model, cls);
  }
  size_t QueuedForTenant(const std::string& t) const override { return fifo_.QueuedForTenant(t); }
  void CountQueued(QueueCounts* out) const override { fifo_.CountQueued(out); }
  QueueAhead QueuedAhead(const std::string& model, uint32_t cls,
                     const std::string& tenant) const override {
    return fifo_.QueuedAhead(model, cls, tenant);
  }

  std::vector<size_t> seen_running;
  std::vector<uint32_t> seen_free;
  std::vector<uint64_t> granted, released;
  std::vector<std::tuple<uint64_t, uint32_t, uint32_t>> served;

 private:
  FifoPolicy fifo_;
};

TEST(SchedulerTest, GrantsFreeSlotsInPolicyOrderUpToMaxBatch) {
  FakeClock clock(0);
  auto owned = std::make_unique<RecordingPolicy>();
  RecordingPolicy& policy = *owned;
  Scheduler s(std::move(owned), /*max_batch=*/2, clock);
  s.OpenModel("m", 0, 3);
  for (uint64_t id = 1; id <= 4; ++id) EXPECT_EQ(s.Enqueue(Job(id, "m")), id - 1);
  std::vector<SlotGrant> grants;
  s.Admit("m", 0, &grants);
  ASSERT_EQ(grants.size(), 2u);  // max_batch, though 3 slots are free.
  EXPECT_EQ(grants[0].job.job_id, 1u);
  EXPECT_EQ(grants[0].slot, 0u);
  EXPECT_EQ(grants[1].job.job_id, 2u);
  EXPECT_EQ(grants[1].slot, 1u);
  EXPECT_EQ(policy.seen_running, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(policy.seen_free, (std::vector<uint32_t>{3, 2}));
  EXPECT_EQ(policy.granted, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(s.running(), 2u);
  EXPECT_EQ(s.queued(), 2u);
  EXPECT_EQ(s.RunOrder("m", 0), (std::deque<uint64_t>{1, 2}));
  ModelSlots slots = s.Slots("m");
  EXPECT_EQ(slots.total, 3u);
  EXPECT_EQ(slots.free, 1u);
  EXPECT_EQ(slots.running, 2u);

  // A released slot is granted again, to the next queued job.
  EXPECT_TRUE(s.Release("m", 1));
  EXPECT_FALSE(s.Release("m", 1));
  EXPECT_EQ(policy.released, std::vector<uint64_t>{1});
  grants.clear();
  s.Admit("m", 0, &grants);
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].job.job_id, 3u);
  EXPECT_EQ(grants[0].slot, 0u);
  EXPECT_EQ(s.RunOrder("m", 0), (std::deque<uint64_t>{2, 3}));
}

TEST(SchedulerTest, AClosedModelGrantsNothingAndItsQueueCanBeTaken) {
  FakeClock clock(0);
  Scheduler s(std::make_unique<FifoPolicy>(), 8, clock);
  s.Enqueue(Job(1, "m"));
  s.Enqueue(Job(2, "other"));
  std::vector<SlotGrant> grants;
  s.Admit("m", 0, &grants);  // Not open.
  EXPECT_TRUE(grants.empty());
  EXPECT_TRUE(s.RunOrder("m", 0).empty());
  std::vector<QueuedJob> taken = s.TakeQueued("m");
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].job_id, 1u);
  EXPECT_EQ(s.queued(), 1u);
  EXPECT_TRUE(s.Dequeue(2));
  EXPECT_EQ(s.queued(), 0u);
}

TEST(SchedulerTest, ReopeningAModelResetsItsSlots) {
  FakeClock clock(0);
  Scheduler s(std::make_unique<FifoPolicy>(), 8, clock);
  s.OpenModel("m", 0, 2);
  s.Enqueue(Job(1, "m"));
  std::vector<SlotGrant> grants;
  s.Admit("m", 0, &grants);
  ASSERT_TRUE(s.Release("m", 1));
  s.CloseModel("m", 0);
  EXPECT_EQ(s.Slots("m").total, 0u);
  s.OpenModel("m", 0, 4);
  EXPECT_EQ(s.Slots("m").free, 4u);
  EXPECT_EQ(s.running(), 0u);
}

TEST(SchedulerTest, ReplicasShareTheQueueEachWithItsOwnSlots) {
  FakeClock clock(0);
  Scheduler s(std::make_unique<FifoPolicy>(), /*max_batch=*/8, clock);
  s.OpenModel("m", 7, 2);
  s.OpenModel("m", 9, 1);
  for (uint64_t id = 1; id <= 5; ++id) s.Enqueue(Job(id, "m"));
  std::vector<SlotGrant> grants;
  s.Admit("m", 9, &grants);  // The first replica with a free slot takes the next job.
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].job.job_id, 1u);
  s.Admit("m", 7, &grants);
  ASSERT_EQ(grants.size(), 3u);
  EXPECT_EQ(grants[1].job.job_id, 2u);
  EXPECT_EQ(grants[2].job.job_id, 3u);
  EXPECT_EQ(s.RunOrder("m", 9), (std::deque<uint64_t>{1}));
  EXPECT_EQ(s.RunOrder("m", 7), (std::deque<uint64_t>{2, 3}));
  EXPECT_EQ(s.queued(), 2u);
  // Summed for the policy and the wait estimate; per replica for status.
  const ModelSlots sum = s.Slots("m");
  EXPECT_EQ(sum.total, 3u);
  EXPECT_EQ(sum.free, 0u);
  EXPECT_EQ(sum.running, 3u);
  EXPECT_EQ(sum.max_batch, 16u);
  EXPECT_EQ(s.ReplicaSlots("m", 7).running, 2u);
  EXPECT_EQ(s.ReplicaSlots("m", 9).total, 1u);
  // Release finds the replica that holds the job; its slot goes to the next queued job.
  EXPECT_TRUE(s.Release("m", 1));
  EXPECT_EQ(s.ReplicaSlots("m", 9).free, 1u);
  grants.clear();
  s.Admit("m", 7, &grants);  // Full: nothing.
  EXPECT_TRUE(grants.empty());
  s.Admit("m", 9, &grants);
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].job.job_id, 4u);
  // Closing one replica leaves the other open.
  ASSERT_TRUE(s.Release("m", 4));
  s.CloseModel("m", 9);
  EXPECT_EQ(s.Slots("m").total, 2u);
  EXPECT_TRUE(s.RunOrder("m", 9).empty());
  EXPECT_FALSE(s.Release("m", 4));
}

TEST(SchedulerTest, AJobGoesBackToThePolicyWithItsOwnPriorityTenantAndDeadline) {
  // What the step loop pushes when it re-queues a job after a board loss or an evacuation (it
  // went back with priority 0 before the job table kept the request's priority).
  JobRecord job;
  job.id = 42;
  job.model = "m";
  job.tenant = "batch";
  job.priority = 200;
  job.accepted_ns = 7;
  job.deadline_unix_ms = 9000;
  job.prompt = {1, 2, 3};
  job.max_tokens = 64;
  const QueuedJob q = QueuedJobOf(job);
  EXPECT_EQ(q.job_id, 42u);
  EXPECT_EQ(q.model, "m");
  EXPECT_EQ(q.tenant, "batch");
  EXPECT_EQ(q.priority, 200);
  EXPECT_EQ(q.accepted_ns, 7);
  EXPECT_EQ(q.deadline_unix_ms, 9000u);
  EXPECT_EQ(q.prompt_tokens, 3u);
  EXPECT_EQ(q.max_tokens, 64u);
}

}  // namespace
}  // namespace wafer::host

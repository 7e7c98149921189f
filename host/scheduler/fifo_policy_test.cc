#include "host/scheduler/fifo_policy.h"

#include "host/scheduler/policy_factory.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

// FIFO looks at nothing that runs.
class NoView final : public SchedulerView {
 public:
  std::vector<RunningJob> Running(const std::string&) const override { return {}; }
  ModelSlots Slots(const std::string&) const override { return {}; }
  uint32_t RunningAtOrBelow(const std::string&, uint32_t) const override { return 0; }
};

std::optional<uint64_t> Pop(FifoPolicy& p, const std::string& model) {
  std::optional<QueuedJob> job = p.PopNext(model, NoView{});
  if (!job) return std::nullopt;
  return job->job_id;
}

QueuedJob Job(uint64_t id, const std::string& model) {
  QueuedJob j;
  j.job_id = id;
  j.model = model;
  return j;
}

TEST(FifoPolicyTest, ServesEachModelInArrivalOrder) {
  FifoPolicy p;
  EXPECT_EQ(p.Push(Job(1, "a")), 0u);
  EXPECT_EQ(p.Push(Job(2, "b")), 0u);
  EXPECT_EQ(p.Push(Job(3, "a")), 1u);
  EXPECT_EQ(p.size(), 3u);
  EXPECT_EQ(p.QueuedFor("a"), 2u);
  EXPECT_EQ(p.Position(3), 1u);
  EXPECT_EQ(Pop(p, "a"), 1u);
  EXPECT_EQ(p.Position(3), 0u);
  EXPECT_EQ(Pop(p, "a"), 3u);
  EXPECT_EQ(Pop(p, "a"), std::nullopt);
  EXPECT_EQ(Pop(p, "zzz"), std::nullopt);
  EXPECT_EQ(Pop(p, "b"), 2u);
  EXPECT_EQ(p.size(), 0u);
}

TEST(FifoPolicyTest, RemoveTakesAQueuedJobOutOnce) {
  FifoPolicy p;
  p.Push(Job(1, "a"));
  p.Push(Job(2, "a"));
  p.Push(Job(3, "a"));
  EXPECT_TRUE(p.Remove(2));
  EXPECT_FALSE(p.Remove(2));
  EXPECT_EQ(p.Position(2), std::nullopt);
  EXPECT_EQ(Pop(p, "a"), 1u);
  EXPECT_EQ(Pop(p, "a"), 3u);
  EXPECT_FALSE(p.Remove(3));
}

TEST(FifoPolicyTest, TakeAllEmptiesOneModelInOrder) {
  FifoPolicy p;
  p.Push(Job(1, "a"));
  p.Push(Job(2, "b"));
  p.Push(Job(3, "a"));
  std::vector<QueuedJob> taken = p.TakeAll("a");
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].job_id, 1u);
  EXPECT_EQ(taken[1].job_id, 3u);
  EXPECT_EQ(p.size(), 1u);
  EXPECT_EQ(p.Position(3), std::nullopt);
  EXPECT_TRUE(p.TakeAll("zzz").empty());
}

TEST(FifoPolicyTest, FactoryKnowsFairAndFifo) {
  const SchedulingConfig config;
  auto fifo = MakeSchedulingPolicy("fifo", config);
  ASSERT_TRUE(fifo.ok()) << fifo.error().ToString();
  EXPECT_NE(*fifo, nullptr);
  auto fair = MakeSchedulingPolicy("fair", config);
  ASSERT_TRUE(fair.ok()) << fair.error().ToString();
  EXPECT_NE(*fair, nullptr);
  auto lottery = MakeSchedulingPolicy("lottery", config);
  EXPECT_EQ(lottery.code(), StatusCode::kInvalidArgument);
  const std::string detail = lottery.ok() ? std::string() : lottery.error().message;
  EXPECT_NE(detail.find("'lottery'"), std::string::npos) << detail;
  EXPECT_NE(detail.find("fair, fifo"), std::string::npos) << detail;
}

}  // namespace
}  // namespace wafer::host

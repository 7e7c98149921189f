#include "host/scheduler/fifo_policy.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

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
  EXPECT_EQ(p.PopNext("a"), 1u);
  EXPECT_EQ(p.Position(3), 0u);
  EXPECT_EQ(p.PopNext("a"), 3u);
  EXPECT_EQ(p.PopNext("a"), std::nullopt);
  EXPECT_EQ(p.PopNext("zzz"), std::nullopt);
  EXPECT_EQ(p.PopNext("b"), 2u);
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
  EXPECT_EQ(p.PopNext("a"), 1u);
  EXPECT_EQ(p.PopNext("a"), 3u);
  EXPECT_FALSE(p.Remove(3));
}

TEST(FifoPolicyTest, FactoryKnowsFifoOnly) {
  EXPECT_NE(MakeSchedulingPolicy("fifo"), nullptr);
  EXPECT_EQ(MakeSchedulingPolicy("lottery"), nullptr);
}

}  // namespace
}  // namespace wafer::host

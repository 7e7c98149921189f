#include "telemetry/cumulative_counter.h"

#include <gtest/gtest.h>

namespace wafer::telemetry {
namespace {

TEST(CumulativeCounterTest, FirstReadingCountsInFullThenOnlyTheIncrease) {
  prometheus::Counter counter;
  CumulativeCounter c(counter);
  EXPECT_EQ(c.Observe(7), 7u);  // Errors the board counted before waferd read it.
  EXPECT_EQ(counter.Value(), 7);
  EXPECT_EQ(c.Observe(7), 0u);  // No new error: nothing added.
  EXPECT_EQ(c.Observe(12), 5u);
  EXPECT_EQ(counter.Value(), 12);
  EXPECT_EQ(c.last(), 12u);
}

TEST(CumulativeCounterTest, ADropIsARestartAndTheCounterKeepsGoingUp) {
  prometheus::Counter counter;
  CumulativeCounter c(counter);
  c.Observe(10);
  EXPECT_EQ(c.Observe(0), 0u);  // Reset: the board counts from 0 again.
  EXPECT_EQ(counter.Value(), 10);
  EXPECT_EQ(c.Observe(3), 3u);  // Growth after the restart is measured from the new base.
  EXPECT_EQ(counter.Value(), 13);
  EXPECT_EQ(c.Observe(2), 2u);  // Another restart, read after 2 new errors: all 2 are new.
  EXPECT_EQ(counter.Value(), 15);
  EXPECT_EQ(c.Observe(4), 2u);
  EXPECT_EQ(counter.Value(), 17);
}

TEST(CumulativeCounterTest, AZeroFirstReadingAddsNothingAndLaterGrowthCounts) {
  prometheus::Counter counter;
  CumulativeCounter c(counter);
  EXPECT_EQ(c.Observe(0), 0u);
  EXPECT_EQ(counter.Value(), 0);
  EXPECT_EQ(c.Observe(1), 1u);
  EXPECT_EQ(counter.Value(), 1);
}

TEST(CumulativeCounterTest, HugeTotalsDoNotWrap) {
  prometheus::Counter counter;
  CumulativeCounter c(counter);
  c.Observe(UINT64_MAX - 1);
  EXPECT_EQ(c.Observe(UINT64_MAX), 1u);
  EXPECT_EQ(c.Observe(5), 5u);  // Restart from the top: no unsigned wrap-around.
}

}  // namespace
}  // namespace wafer::telemetry

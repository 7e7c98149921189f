#include "host/boards/board_drain.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

TEST(BoardDrainTest, ReasonsAreKeptApartAndEachUndrainLiftsOnlyItsOwn) {
  BoardDrain drain;
  EXPECT_FALSE(drain.drained());
  EXPECT_TRUE(drain.Add(DrainReason::kOperator, DrainMode::kGraceful));
  EXPECT_TRUE(drain.drained());
  EXPECT_EQ(drain.mode(), DrainMode::kGraceful);
  // A second reason in the same mode changes nothing as a whole.
  EXPECT_FALSE(drain.Add(DrainReason::kHealthIncident, DrainMode::kGraceful));
  EXPECT_EQ(drain.Describe(), "operator (graceful), health incident (graceful)");
  // The operator's undrain leaves the health incident's drain in force.
  EXPECT_FALSE(drain.Remove(DrainReason::kOperator));
  EXPECT_TRUE(drain.drained());
  EXPECT_FALSE(drain.Has(DrainReason::kOperator));
  EXPECT_TRUE(drain.Has(DrainReason::kHealthIncident));
  EXPECT_FALSE(drain.Remove(DrainReason::kOperator));  // Not held: nothing to lift.
  EXPECT_TRUE(drain.Remove(DrainReason::kHealthIncident));
  EXPECT_FALSE(drain.drained());
  EXPECT_EQ(drain.Describe(), "");
}

TEST(BoardDrainTest, AnyEvacuatingReasonMakesTheDrainEvacuate) {
  BoardDrain drain;
  drain.Add(DrainReason::kOperator, DrainMode::kGraceful);
  EXPECT_TRUE(drain.Add(DrainReason::kDiagnostics, DrainMode::kEvacuate));
  EXPECT_EQ(drain.mode(), DrainMode::kEvacuate);
  EXPECT_TRUE(drain.Remove(DrainReason::kDiagnostics));  // Back to graceful: a change.
  EXPECT_EQ(drain.mode(), DrainMode::kGraceful);
  // A reason given again takes its new mode.
  EXPECT_TRUE(drain.Add(DrainReason::kOperator, DrainMode::kEvacuate));
  EXPECT_EQ(drain.Describe(), "operator (evacuate)");
}

}  // namespace
}  // namespace wafer::host

#include "host/boards/board_signals.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

BoardIdentity Booted() {
  BoardIdentity id;
  id.physical_pes = 1200;
  id.usable_pes = 1000;
  id.failed_pes = 30;  // Manufacturing defects, fused at boot.
  id.healthy_pes = 1170;
  id.spare_pes = 170;
  return id;
}

TEST(BoardSignalsTest, RunTimeFailuresAddToTheDefectsAndTakeSpares) {
  BoardTelemetry t;
  t.runtime_failed_pes = 4;
  t.ecc_correctable = 9;
  t.ecc_uncorrectable = 2;
  t.link_crc_errors = 5;
  t.throttled = true;
  const telemetry::BoardSignals s = ToBoardSignals(Booted(), t);
  EXPECT_EQ(s.physical_pes, 1200u);
  EXPECT_EQ(s.usable_pes, 1000u);
  EXPECT_EQ(s.failed_pes, 34u);
  EXPECT_EQ(s.spare_pes, 166u);
  // What the firmware's geometry says: healthy - usable, healthy = physical - failed.
  EXPECT_EQ(s.spare_pes, s.physical_pes - s.failed_pes - s.usable_pes);
  EXPECT_EQ(s.ecc_corrected, 9u);
  EXPECT_EQ(s.ecc_uncorrected, 2u);
  EXPECT_EQ(s.link_crc_errors, 5u);
  EXPECT_TRUE(s.throttled);
  EXPECT_FALSE(s.thermal_trip);
}

TEST(BoardSignalsTest, SparesStopAtZero) {
  BoardTelemetry t;
  t.runtime_failed_pes = 500;  // More than the spares: rows ran out.
  const telemetry::BoardSignals s = ToBoardSignals(Booted(), t);
  EXPECT_EQ(s.spare_pes, 0u);
  EXPECT_EQ(s.failed_pes, 530u);
}

}  // namespace
}  // namespace wafer::host

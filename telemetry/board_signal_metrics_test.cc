#include "telemetry/board_signal_metrics.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include "telemetry/testing/registry_samples.h"

namespace wafer::telemetry {
namespace {

using testing::Samples;

TEST(BoardSignalMetricsTest, AConfiguredBoardHasEverySeriesAtZeroBeforeItsFirstReading) {
  prometheus::Registry registry;
  BoardSignalMetrics metrics(registry);
  metrics.AddBoard(3);
  const std::map<std::string, double> s = Samples(registry);
  for (const char* key :
       {"wafer_board_ecc_errors_total{3,corrected}", "wafer_board_ecc_errors_total{3,uncorrected}",
        "wafer_board_link_crc_errors_total{3}", "wafer_board_pes{3,physical}",
        "wafer_board_pes{3,usable}", "wafer_board_pes{3,spare}", "wafer_board_pes{3,failed}",
        "wafer_board_throttled{3}", "wafer_board_thermal_trip{3}"}) {
    ASSERT_TRUE(s.count(key)) << key;
    EXPECT_EQ(s.at(key), 0) << key;
  }
  EXPECT_EQ(s.size(), 9u);  // No firmware series before a version is known.
}

TEST(BoardSignalMetricsTest, CountersSurviveABoardResetAndGaugesTakeTheReading) {
  prometheus::Registry registry;
  BoardSignalMetrics metrics(registry);
  BoardSignals r;
  r.ecc_corrected = 40;
  r.ecc_uncorrected = 1;
  r.link_crc_errors = 2;
  r.physical_pes = 1000;
  r.usable_pes = 900;
  r.spare_pes = 95;
  r.failed_pes = 5;
  r.throttled = true;
  metrics.Record(0, r);
  r.ecc_corrected = 3;  // The board was reset: its ECC totals start again.
  r.ecc_uncorrected = 0;
  r.link_crc_errors = 6;  // The link's total runs on across resets.
  r.spare_pes = 94;
  r.failed_pes = 6;
  r.throttled = false;
  r.thermal_trip = true;
  metrics.Record(0, r);
  const std::map<std::string, double> s = Samples(registry);
  EXPECT_EQ(s.at("wafer_board_ecc_errors_total{0,corrected}"), 43);
  EXPECT_EQ(s.at("wafer_board_ecc_errors_total{0,uncorrected}"), 1);
  EXPECT_EQ(s.at("wafer_board_link_crc_errors_total{0}"), 6);
  EXPECT_EQ(s.at("wafer_board_pes{0,physical}"), 1000);
  EXPECT_EQ(s.at("wafer_board_pes{0,usable}"), 900);
  EXPECT_EQ(s.at("wafer_board_pes{0,spare}"), 94);
  EXPECT_EQ(s.at("wafer_board_pes{0,failed}"), 6);
  EXPECT_EQ(s.at("wafer_board_throttled{0}"), 0);
  EXPECT_EQ(s.at("wafer_board_thermal_trip{0}"), 1);
}

TEST(BoardSignalMetricsTest, FirmwareInfoFollowsTheVersionAndSlot) {
  prometheus::Registry registry;
  BoardSignalMetrics metrics(registry);
  metrics.SetFirmware(1, "1.2.0", 0);
  metrics.SetFirmware(1, "1.2.0", 0);  // Unchanged: the same single series.
  std::map<std::string, double> s = Samples(registry);
  // Labels sorted by name: board, slot, version.
  EXPECT_EQ(s.at("wafer_board_firmware_info{1,0,1.2.0}"), 1);

  metrics.SetFirmware(1, "1.3.0", 1);  // An update switched slots.
  s = Samples(registry);
  EXPECT_EQ(s.count("wafer_board_firmware_info{1,0,1.2.0}"), 0u);
  EXPECT_EQ(s.at("wafer_board_firmware_info{1,1,1.3.0}"), 1);

  metrics.SetFirmware(1, "1.2.0", 0);  // Rolled back.
  s = Samples(registry);
  EXPECT_EQ(s.count("wafer_board_firmware_info{1,1,1.3.0}"), 0u);
  EXPECT_EQ(s.at("wafer_board_firmware_info{1,0,1.2.0}"), 1);

  metrics.SetFirmware(1, "", 0);
  s = Samples(registry);
  EXPECT_EQ(s.count("wafer_board_firmware_info{1,0,1.2.0}"), 0u);
}

}  // namespace
}  // namespace wafer::telemetry

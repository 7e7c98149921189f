// The admin plane beyond load/unload: the board firmware's error log and the board's geometry,
// harvesting map and sensors, read through the daemon.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

TEST(BoardLogTest, AdminReadsTheFirmwareErrorLogThroughTheDaemon) {
  DaemonHarness h;
  auto admin = h.NewAdminClient();
  // The board boots asynchronously; its boot edges are logged.
  BoardLogReply log;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(IsOk(admin->ReadBoardLog(0, 0, &log, 10000)));
    if (log.records.size() >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(log.records.size(), 2u);
  for (size_t i = 1; i < log.records.size(); ++i) {
    EXPECT_GT(log.records[i].sequence, log.records[i - 1].sequence);
    EXPECT_FALSE(log.records[i].code.empty());
    EXPECT_FALSE(log.records[i].severity.empty());
  }
  EXPECT_GT(log.next_sequence, log.records.back().sequence);
  // Reading on from next_sequence returns nothing new (the board is idle).
  BoardLogReply more;
  ASSERT_TRUE(admin->ReadBoardLog(0, log.next_sequence, &more, 10000).ok());
  EXPECT_TRUE(more.records.empty());
  // An unknown board is a typed refusal.
  HostStatus refused = admin->ReadBoardLog(7, 0, &more, 10000);
  ASSERT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message.find("not configured"), std::string::npos);
}

TEST(BoardShowTest, AdminReportsGeometryHarvestingAndSensors) {
  DaemonHarness h;
  auto admin = h.NewAdminClient();
  BoardDetail d;
  HostStatus shown;
  for (int i = 0; i < 100; ++i) {  // The board boots asynchronously.
    shown = admin->ShowBoard(0, &d, 10000);
    if (shown.ok() && !d.region_temp_c.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(d.region_temp_c.empty()) << Describe(shown);
  EXPECT_EQ(d.info.preset, "mini");
  EXPECT_EQ(d.row_failed.size(), d.physical_rows);
  uint64_t failed = 0;
  for (uint16_t f : d.row_failed) failed += f;
  EXPECT_EQ(failed, d.failed_pes);
  EXPECT_EQ(d.healthy_pes, uint64_t{d.physical_rows} * d.physical_cols - d.failed_pes);
  EXPECT_LE(uint64_t{d.usable_width} * d.usable_height, d.healthy_pes);
  EXPECT_EQ(d.region_clock_hz.size(), d.region_temp_c.size());
  EXPECT_GT(d.coolant_out_c, 0);
  BoardDetail none;
  EXPECT_EQ(admin->ShowBoard(3, &none, 10000).code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace wafer::testing

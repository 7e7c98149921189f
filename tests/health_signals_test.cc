// The health signals end to end (issue 13 item 5): faults injected on a simulated board through
// the admin socket show in waferd's /metrics as the board reports them, the error counters keep
// going up across a board reset that restarts the board's own totals, and a thermal trip shows.
#include <chrono>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"
#include "tests/http_get.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;
using Clock = std::chrono::steady_clock;

constexpr int kTimeoutMs = 20000;

// The value of `series` (name and labels as /metrics prints them) in waferd's /metrics, or -1.
double Sample(DaemonHarness& h, const std::string& series) {
  const std::string text = HttpGet(h.daemon().metrics_port(), "/metrics");
  const size_t at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

std::string Pes(const char* kind) {
  return std::string("wafer_board_pes{board=\"0\",kind=\"") + kind + "\"}";
}
const char kCorrected[] = "wafer_board_ecc_errors_total{board=\"0\",kind=\"corrected\"}";
const char kUncorrected[] = "wafer_board_ecc_errors_total{board=\"0\",kind=\"uncorrected\"}";
const char kLinkCrc[] = "wafer_board_link_crc_errors_total{board=\"0\"}";
const char kReady[] = "wafer_board_state{board=\"0\",state=\"ready\"}";

// Polls until `done` holds (telemetry is read about once a second); false after `seconds`.
bool WaitUntil(const std::function<bool()>& done, int seconds = 15) {
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

void Inject(AdminClient& admin, const char* kind, uint32_t region, uint32_t row, uint32_t pe,
            double value) {
  OperationResult r;
  ASSERT_TRUE(
      admin.Operate(InjectFault{0, 0, kind, region, row, pe, value}, nullptr, &r, kTimeoutMs).ok());
  ASSERT_EQ(r.code, ErrorCode::kNone) << kind << ": " << r.detail;
}

TEST(HealthSignalsTest, ErrorCountersFollowTheBoardAndKeepGoingUpAcrossAReset) {
  DaemonHarness h;
  // Ready, and its first telemetry read (the PE counts come with it, a second or so later).
  ASSERT_TRUE(WaitUntil([&] { return Sample(h, kReady) == 1 && Sample(h, Pes("usable")) > 0; }))
      << "board 0 never got ready";
  auto admin = h.NewAdminClient();
  const double spare = Sample(h, Pes("spare"));
  const double failed = Sample(h, Pes("failed"));
  ASSERT_GT(spare, 0);
  EXPECT_EQ(Sample(h, kCorrected), 0);
  EXPECT_EQ(Sample(h, kUncorrected), 0);

  // Five corrected errors on one PE, one uncorrectable on another (which retires it and takes
  // a spare), and three host-link frames with a bad CRC (the link resends them).
  Inject(*admin, "ecc_correctable", 0, 2, 3, 5);
  Inject(*admin, "ecc_uncorrectable", 0, 4, 5, 0);
  Inject(*admin, "link_crc", 0, 0, 0, 3);
  ASSERT_TRUE(WaitUntil([&] {
    return Sample(h, kCorrected) == 5 && Sample(h, kUncorrected) == 1 &&
           Sample(h, kLinkCrc) == 3 && Sample(h, Pes("failed")) == failed + 1;
  })) << "corrected " << Sample(h, kCorrected) << ", uncorrected " << Sample(h, kUncorrected)
      << ", link CRC " << Sample(h, kLinkCrc) << ", failed " << Sample(h, Pes("failed"));
  EXPECT_EQ(Sample(h, Pes("spare")), spare - 1);
  EXPECT_EQ(Sample(h, Pes("physical")),
            Sample(h, Pes("usable")) + Sample(h, Pes("spare")) + Sample(h, Pes("failed")));

  // A reset restarts the board's ECC totals and its run-time PE failures; the exported
  // counters stay where they were.
  OperationResult reset;
  ASSERT_TRUE(admin->Operate(ResetBoard{0, 0}, nullptr, &reset, kTimeoutMs).ok());
  ASSERT_EQ(reset.code, ErrorCode::kNone) << reset.detail;
  ASSERT_TRUE(WaitUntil([&] {
    return Sample(h, kReady) == 1 && Sample(h, Pes("failed")) == failed;
  })) << "the board did not come back with its boot-time defects only";
  EXPECT_EQ(Sample(h, Pes("spare")), spare);
  EXPECT_EQ(Sample(h, kCorrected), 5);
  EXPECT_EQ(Sample(h, kUncorrected), 1);

  // Two more corrected errors: the board counts 2 since its reset, the counter 5 + 2.
  Inject(*admin, "ecc_correctable", 0, 2, 3, 2);
  ASSERT_TRUE(WaitUntil([&] { return Sample(h, kCorrected) == 7; }))
      << "corrected " << Sample(h, kCorrected);
  EXPECT_EQ(Sample(h, kUncorrected), 1);
  EXPECT_GE(Sample(h, kLinkCrc), 3);
}

TEST(HealthSignalsTest, AThermalTripShowsInWaferBoardThermalTrip) {
  DaemonHarness h;
  ASSERT_TRUE(WaitUntil([&] { return Sample(h, kReady) == 1; })) << "board 0 never got ready";
  const std::string trip = "wafer_board_thermal_trip{board=\"0\"}";
  EXPECT_EQ(Sample(h, trip), 0);
  auto admin = h.NewAdminClient();
  // Region 0's thermal resistance times 20: the mini preset's die passes 105 C in about 7 s and
  // the firmware halts it. The daemon sees it faulted, with thermal_trip in its final reading.
  Inject(*admin, "thermal_runaway", 0, 0, 0, 20);
  EXPECT_TRUE(WaitUntil([&] { return Sample(h, trip) == 1; }, 30))
      << "max temperature " << Sample(h, "wafer_board_max_temperature_celsius{board=\"0\"}");
  EXPECT_GT(Sample(h, "wafer_board_max_temperature_celsius{board=\"0\"}"), 105);
}

}  // namespace
}  // namespace wafer::testing

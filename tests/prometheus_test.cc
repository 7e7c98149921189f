// Telemetry against the real thing: /metrics passes `promtool check metrics`, and a real
// Prometheus (Debian's package, on loopback) scrapes waferd and sees the job counters move.
#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "host/frontend/admin_frontend.h"
#include "tests/daemon_harness.h"
#include "tests/http_get.h"
#include "tests/prometheus_server.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

// Extracts the value of the first sample in a Prometheus instant-query JSON answer.
double QueryValue(const std::string& json) {
  size_t at = json.find("\"value\":[");
  if (at == std::string::npos) return -1;
  size_t q1 = json.find('"', json.find(',', at) + 1);
  size_t q2 = json.find('"', q1 + 1);
  if (q1 == std::string::npos || q2 == std::string::npos) return -1;
  return std::stod(json.substr(q1 + 1, q2 - q1 - 1));
}

// The value of the sample `series` (name and labels exactly as /metrics prints them), or -1.
double SampleValue(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

TEST(PrometheusTest, MetricsPassPromtoolAndAPrometheusSeesCountersMove) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  DaemonHarness h;
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 4), ErrorCode::kNone);
  RunJobsThenARejection(h, "tiny", 3, 5);
  const int metrics_port = h.daemon().metrics_port();
  ASSERT_GT(metrics_port, 0);

  int http_status = 0;
  std::string text = HttpGet(metrics_port, "/metrics", &http_status);
  ASSERT_EQ(http_status, 200);
  for (const char* name :
       {"wafer_jobs_submitted_total", "wafer_jobs_finished_total", "wafer_tokens_generated_total",
        "wafer_job_time_to_first_token_seconds_bucket", "wafer_job_inter_token_seconds_bucket",
        "wafer_scheduler_queue_depth", "wafer_board_state", "wafer_board_max_temperature_celsius",
        "wafer_jobs_rejected_total", "wafer_board_ecc_errors_total",
        "wafer_board_link_crc_errors_total", "wafer_board_pes", "wafer_board_throttled",
        "wafer_board_thermal_trip", "wafer_board_firmware_info", "wafer_build_info"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  // The health signals: the daemon's version, and PE counts that add up as the firmware's
  // geometry does (physical = usable + spare + failed) on a board that has booted.
  EXPECT_EQ(SampleValue(text, std::string("wafer_build_info{version=\"") + kWaferdVersion + "\"}"),
            1);
  const auto pes = [&text](const char* kind) {
    return SampleValue(text, std::string("wafer_board_pes{board=\"0\",kind=\"") + kind + "\"}");
  };
  EXPECT_GT(pes("usable"), 0);
  EXPECT_GE(pes("spare"), 0);
  EXPECT_GE(pes("failed"), 0);
  EXPECT_EQ(pes("physical"), pes("usable") + pes("spare") + pes("failed"));
  EXPECT_EQ(SampleValue(text, "wafer_board_ecc_errors_total{board=\"0\",kind=\"uncorrected\"}"),
            0);
  EXPECT_EQ(SampleValue(text, "wafer_board_throttled{board=\"0\"}"), 0);
  const std::string metrics_file = dir.path() + "/metrics.txt";
  std::ofstream(metrics_file) << text;
  EXPECT_EQ(RunProgram({"/bin/sh", "-c", "promtool check metrics < " + metrics_file},
                       dir.path() + "/promtool.log"),
            0)
      << "see " << dir.path() << "/promtool.log";

  PrometheusServer prometheus(dir.path(), metrics_port);
  ASSERT_GT(prometheus.pid(), 0);
  const int prom_port = prometheus.port();

  auto query = [&](const std::string& expr) {
    return QueryValue(HttpGet(prom_port, "/api/v1/query?query=" + expr));
  };
  auto wait_for = [&](const std::string& expr, double at_least) {
    double v = -1;
    for (int i = 0; i < 60 && v < at_least; ++i) {  // First scrape lands after ~6 s.
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      v = query(expr);
    }
    return v;
  };
  EXPECT_GE(wait_for("sum(wafer_jobs_submitted_total)", 3), 3);
  EXPECT_GE(wait_for("sum(wafer_jobs_finished_total)", 3), 3);
  EXPECT_GE(wait_for("sum(wafer_jobs_rejected_total)", 1), 1);
  RunJobsThenARejection(h, "tiny", 2, 5);
  EXPECT_GE(wait_for("sum(wafer_jobs_finished_total)", 5), 5) << "see " << dir.path();
  EXPECT_GE(wait_for("sum(wafer_tokens_generated_total)", 25), 25);
}

}  // namespace
}  // namespace wafer::testing

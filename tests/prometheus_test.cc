// Telemetry against the real thing: /metrics passes `promtool check metrics`, and a real
// Prometheus (Debian's package, on loopback) scrapes waferd and sees the job counters move.
#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

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
        "wafer_jobs_rejected_total"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
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

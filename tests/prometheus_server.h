// A real Prometheus (Debian's `prometheus` package) for tests: on a free loopback port, scraping
// one target every second, its TSDB in a test's temporary directory, stopped by its PID.
// Header-only so that tests can share it without another library.
#pragma once

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <string>
#include <vector>

#include "tests/daemon_harness.h"
#include "tests/http_get.h"

namespace wafer::testing {

// Whether `prometheus` is on PATH (scripts/install-deps installs it; `make test` runs that).
inline bool PrometheusInstalled() {
  return RunProgram({"/bin/sh", "-c", "command -v prometheus"}) == 0;
}

// Not thread-safe. Starting never blocks: Prometheus is ready in milliseconds, but its first
// scrape lands about 6 s later (target discovery is throttled to 5 s), so poll for data.
class PrometheusServer {
 public:
  // Writes `dir`/prometheus.yml (scrape 127.0.0.1:`target_port` every second as job "waferd",
  // evaluate the rule files `rule_files` every second) and starts Prometheus with its log in
  // `dir`/prometheus.log. pid() <= 0 if fork failed.
  PrometheusServer(const std::string& dir, int target_port,
                   const std::vector<std::string>& rule_files = {})
      : port_(FreeLoopbackPort()) {
    std::ofstream config(dir + "/prometheus.yml");
    config << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
           << "scrape_configs:\n  - job_name: waferd\n    static_configs:\n"
           << "      - targets: ['127.0.0.1:" << target_port << "']\n";
    if (!rule_files.empty()) config << "rule_files:\n";
    for (const std::string& file : rule_files) config << "  - '" << file << "'\n";
    config.close();
    const std::vector<std::string> argv = {
        "prometheus", "--config.file=" + dir + "/prometheus.yml",
        "--storage.tsdb.path=" + dir + "/tsdb",
        "--web.listen-address=127.0.0.1:" + std::to_string(port_)};
    pid_ = SpawnProgram(argv, dir + "/prometheus.log");
  }
  // Stops this Prometheus (SIGTERM to its PID) and reaps it.
  ~PrometheusServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status;
      waitpid(pid_, &status, 0);
    }
  }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  pid_t pid() const { return pid_; }
  int port() const { return port_; }

  // GETs `path` (already URL-encoded) from the HTTP API; "" on failure.
  std::string Get(const std::string& path, int* status = nullptr) const {
    return HttpGet(port_, path, status);
  }

 private:
  int port_;
  pid_t pid_ = -1;
};

}  // namespace wafer::testing

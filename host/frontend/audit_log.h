// The audit log: every admin action requested (who, what), every refusal of one, every
// operation's outcome, and every client key the ZAP handler turned away, one line each, in a
// stream of its own (a file, or stderr prefixed "waferd audit:"), and counted in
// wafer_audit_events_total{event}.
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/error.h"
#include "common/status.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

// Thread-safe: the step loop and the ZAP handler's thread both record.
class AuditLog {
 public:
  // Events counted: "admin_action", "admin_denied", "operation_done", "auth_refused", "reload";
  // their
  // series are created here, so that recording from any thread creates none.
  // REQUIRES: `clock` and `metrics` outlive the log.
  AuditLog(const Clock& clock, telemetry::DaemonMetrics& metrics);
  ~AuditLog();

  // Appends to `path` ("" keeps stderr). Returns OK, or NOT_FOUND (the message names the file)
  // when it cannot be opened for appending.
  HostStatus Open(const std::string& path);

  // One line: time (UTC, from the clock's wall time), `event`, who, what and the outcome.
  void Record(const char* event, const std::string& who, const std::string& what,
              const std::string& outcome);
  // For what a peer can repeat at will (a refused client retries every 100 ms or so): one line
  // per (event, who, what, outcome) per kRepeatPeriodNs at most, saying how many were left out
  // since; every one is counted.
  void RecordRepeatable(const char* event, const std::string& who, const std::string& what,
                        const std::string& outcome);
  static constexpr int64_t kRepeatPeriodNs = 10'000'000'000;

 private:
  struct Repeats {
    int64_t last_line_ns = 0;
    uint64_t left_out = 0;
  };
  const Clock& clock_;
  telemetry::DaemonMetrics& metrics_;
  std::mutex mu_;
  std::FILE* file_ = nullptr;  // Guarded by mu_; nullptr: stderr.
  // Guarded by mu_. At most kMaxRepeatKeys (event, who, what, outcome) keys are remembered; past
  // that the memory starts afresh (more lines, never unbounded memory).
  std::unordered_map<std::string, Repeats> repeats_;
  static constexpr size_t kMaxRepeatKeys = 1024;
};

}  // namespace wafer::host

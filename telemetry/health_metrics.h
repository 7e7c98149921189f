// Board health as Prometheus series (host/health/ sets them): each board's worst rule and each
// rule's level, open incidents and quarantine, incidents opened by code, and recoveries by
// outcome. Levels are 0 PASS, 1 WARN, 2 FAIL. Labels are bounded: board index, rule name, code
// name from a fixed catalog, outcome.
#pragma once

#include <cstdint>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace wafer::telemetry {

// Looking series up is not thread-safe (waferd's step loop only); updating one is.
class HealthMetrics {
 public:
  explicit HealthMetrics(prometheus::Registry& registry);

  // wafer_board_health{board}: the board's worst rule.
  prometheus::Gauge& Board(uint32_t board);
  // wafer_board_health_rule{board, rule}
  prometheus::Gauge& Rule(uint32_t board, const std::string& rule);
  // wafer_health_incidents_open{board}: 0 or 1.
  prometheus::Gauge& IncidentsOpen(uint32_t board);
  // wafer_board_quarantined{board}: 1 after max_recoveries failed resets, until cleared.
  prometheus::Gauge& Quarantined(uint32_t board);
  // wafer_health_incidents_total{code}: incidents opened, by the code that opened them.
  prometheus::Counter& Incidents(const std::string& code);
  // wafer_health_recoveries_total{board, outcome}: attempted (a reset sent), succeeded (the
  // board returned to service), failed (a rule still failed after the reset).
  prometheus::Counter& Recoveries(uint32_t board, const std::string& outcome);
  // wafer_diagnostics_runs_total{board, level, outcome}: `waferctl diag` runs by outcome (PASS,
  // WARN, FAIL).
  prometheus::Counter& Diagnostics(uint32_t board, uint32_t level, const std::string& outcome);
  // wafer_diagnostics_pes_retired_total{board}: PEs level-3 sweeps retired into the defect map.
  prometheus::Counter& DiagnosticsRetired(uint32_t board);

 private:
  prometheus::Family<prometheus::Gauge>& board_;
  prometheus::Family<prometheus::Gauge>& rule_;
  prometheus::Family<prometheus::Gauge>& open_;
  prometheus::Family<prometheus::Gauge>& quarantined_;
  prometheus::Family<prometheus::Counter>& incidents_;
  prometheus::Family<prometheus::Counter>& recoveries_;
  prometheus::Family<prometheus::Counter>& diagnostics_;
  prometheus::Family<prometheus::Counter>& retired_;
};

}  // namespace wafer::telemetry

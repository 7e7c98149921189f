#include "telemetry/health_metrics.h"

namespace wafer::telemetry {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

HealthMetrics::HealthMetrics(prometheus::Registry& r)
    : board_(BuildGauge()
                 .Name("wafer_board_health")
                 .Help("The board's worst health rule: 0 PASS, 1 WARN, 2 FAIL.")
                 .Register(r)),
      rule_(BuildGauge()
                .Name("wafer_board_health_rule")
                .Help("One health rule of one board: 0 PASS, 1 WARN, 2 FAIL.")
                .Register(r)),
      open_(BuildGauge()
                .Name("wafer_health_incidents_open")
                .Help("1 while the board has an open health incident (drained by it).")
                .Register(r)),
      quarantined_(BuildGauge()
                       .Name("wafer_board_quarantined")
                       .Help("1 while the board is quarantined: its resets did not bring it back; "
                             "it stays drained until an operator clears it.")
                       .Register(r)),
      incidents_(BuildCounter()
                     .Name("wafer_health_incidents_total")
                     .Help("Health incidents opened, by the code of the rule that failed.")
                     .Register(r)),
      recoveries_(BuildCounter()
                      .Name("wafer_health_recoveries_total")
                      .Help("Automatic recoveries by outcome: attempted (reset sent), succeeded, "
                            "failed.")
                      .Register(r)),
      diagnostics_(BuildCounter()
                       .Name("wafer_diagnostics_runs_total")
                       .Help("Diagnostics runs (waferctl diag) by level and outcome: PASS, WARN, "
                             "FAIL.")
                       .Register(r)),
      retired_(BuildCounter()
                   .Name("wafer_diagnostics_pes_retired_total")
                   .Help("PEs level-3 diagnostics found failing and retired into the board's "
                         "defect map.")
                   .Register(r)) {}

prometheus::Gauge& HealthMetrics::Board(uint32_t board) {
  return board_.Add({{"board", std::to_string(board)}});
}

prometheus::Gauge& HealthMetrics::Rule(uint32_t board, const std::string& rule) {
  return rule_.Add({{"board", std::to_string(board)}, {"rule", rule}});
}

prometheus::Gauge& HealthMetrics::IncidentsOpen(uint32_t board) {
  return open_.Add({{"board", std::to_string(board)}});
}

prometheus::Gauge& HealthMetrics::Quarantined(uint32_t board) {
  return quarantined_.Add({{"board", std::to_string(board)}});
}

prometheus::Counter& HealthMetrics::Incidents(const std::string& code) {
  return incidents_.Add({{"code", code}});
}

prometheus::Counter& HealthMetrics::Recoveries(uint32_t board, const std::string& outcome) {
  return recoveries_.Add({{"board", std::to_string(board)}, {"outcome", outcome}});
}

prometheus::Counter& HealthMetrics::Diagnostics(uint32_t board, uint32_t level,
                                               const std::string& outcome) {
  return diagnostics_.Add(
      {{"board", std::to_string(board)}, {"level", std::to_string(level)}, {"outcome", outcome}});
}

prometheus::Counter& HealthMetrics::DiagnosticsRetired(uint32_t board) {
  return retired_.Add({{"board", std::to_string(board)}});
}

}  // namespace wafer::telemetry

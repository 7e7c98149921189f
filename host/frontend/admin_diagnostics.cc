// The admin socket's diagnostics (`waferctl diag`, admin role): levels 2 and 3 drain the board
// for diagnostics (evacuate) before its worker runs the tests and lift that reason after; the
// worker's progress is relayed to the client, then the report.
#include "host/frontend/admin_frontend.h"

namespace wafer::host {
namespace {

DiagnosticReport ReportOf(uint64_t tag, uint32_t board, const DiagReport& r) {
  DiagnosticReport out;
  out.request_tag = tag;
  out.board = board;
  out.level = r.level;
  out.outcome = static_cast<WireDiagOutcome>(r.outcome);
  out.pes_retired = r.pes_retired;
  out.elapsed_s = r.elapsed_s;
  for (const DiagTestResult& t : r.tests) {
    const DiagCode* code = FindDiagCode(t.code);
    DiagnosticTest test;
    test.name = t.name;
    test.outcome = static_cast<WireDiagOutcome>(t.outcome);
    test.code = t.code;
    test.code_name = code != nullptr ? code->name : "";
    test.message = t.message;
    test.action = code != nullptr ? code->action : "";
    test.units_tested = t.units_tested;
    test.failures = t.failures;
    for (const BoardDiagFinding& f : t.findings) {
      test.findings.push_back(
          DiagnosticFinding{f.row, f.pe, f.region, f.detail, f.retired, f.remapped});
    }
    test.retired = t.retired;
    test.elapsed_s = t.elapsed_s;
    test.device_ns = t.device_ns;
    out.tests.push_back(std::move(test));
  }
  return out;
}

}  // namespace

void AdminFrontend::OnRunDiagnostics(const std::string& peer, const RunDiagnostics& run) {
  if (!CheckBoard(peer, run.request_tag, run.board)) return;
  Board& board = boards_.at(run.board);
  if (board.diagnosing) {
    return FinishOperation(peer, run.request_tag, FailedPrecondition(),
                           "diagnostics are already under way on board " +
                               std::to_string(run.board),
                           0);
  }
  board.diagnosing = true;
  diag_started_ns_[run.board] = clock_.NowNanos();
  // Levels 2 and 3 write patterns into the SRAM and hold the fabric: no Step may run meanwhile.
  // The worker takes requests in order, so every Step sent before the drain ends first.
  if (run.level >= 2) boards_.Drain(run.board, DrainReason::kDiagnostics, DrainMode::kEvacuate);
  DiagWork work{run.request_tag, peer, run.level,
                DiagLimits{static_cast<float>(config_.health.temperature_warn_c),
                           static_cast<float>(config_.health.temperature_critical_c)}};
  if (!boards_.Send(run.board, std::make_unique<WorkerRequest>(std::move(work)))) {
    board.diagnosing = false;
    boards_.Undrain(run.board, DrainReason::kDiagnostics);
    FinishOperation(peer, run.request_tag, Unavailable(),
                    "board " + std::to_string(run.board) + "'s worker did not take the request", 0);
  }
}

void AdminFrontend::OnDiagProgress(const Board& board, const DiagProgressEvent& event) {
  Send(event.admin_peer, DiagnosticProgress{event.admin_tag, board.index, event.progress.test,
                                            event.progress.done, event.progress.total});
}

void AdminFrontend::OnDiagDone(Board& board, DiagDone& done) {
  board.diagnosing = false;
  boards_.Undrain(board.index, DrainReason::kDiagnostics);  // Other reasons stay.
  DiagnosticReport report = ReportOf(done.admin_tag, board.index, done.report);
  report.elapsed_s =
      static_cast<double>(clock_.NowNanos() - diag_started_ns_[board.index]) / 1e9;
  audit_.Record("operation_done", "-", "tag=" + std::to_string(done.admin_tag),
                std::string("diagnostics level ") + std::to_string(report.level) + " on board " +
                    std::to_string(board.index) + ": " + DiagOutcomeName(done.report.outcome) +
                    ", " + std::to_string(report.pes_retired) + " PEs retired");
  health_.OnDiagnostics(board.index, report.level, DiagOutcomeName(done.report.outcome),
                        report.pes_retired);
  Send(done.admin_peer, report);
}

}  // namespace wafer::host

#include "host/ctl/diag_command.h"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "host/ctl/exit_codes.h"
#include "host/ctl/jobs_command.h"

namespace wafer::host {
namespace {

using nlohmann::json;

const char* OutcomeName(WireDiagOutcome outcome) {
  switch (outcome) {
    case WireDiagOutcome::kPass: return "PASS";
    case WireDiagOutcome::kWarn: return "WARN";
    case WireDiagOutcome::kFail: return "FAIL";
    case WireDiagOutcome::kSkip: return "SKIP";
  }
  return "FAIL";
}

// How bad an outcome is, for the exit code: SKIP counts as PASS.
int Severity(WireDiagOutcome outcome) {
  switch (outcome) {
    case WireDiagOutcome::kWarn: return 1;
    case WireDiagOutcome::kFail: return 2;
    default: return 0;
  }
}

std::string FindingText(const DiagnosticTest& test, const DiagnosticFinding& f) {
  char buf[160];
  if (test.name == "known_answer") {
    std::snprintf(buf, sizeof buf, "region %u answered %llu", f.region,
                  static_cast<unsigned long long>(f.detail));
  } else if (test.name == "fabric_links") {
    std::snprintf(buf, sizeof buf, "row %u PE %u %s link", f.row, f.pe,
                  f.detail == 0 ? "east" : "south");
  } else {
    std::snprintf(buf, sizeof buf, "row %u PE %u word 0x%llx", f.row, f.pe,
                  static_cast<unsigned long long>(f.detail));
  }
  std::string text = buf;
  if (f.retired) text += f.remapped ? " (retired, spare in place)" : " (retired, no spare)";
  return text;
}

json ReportJson(const DiagnosticReport& r) {
  json tests = json::array();
  for (const DiagnosticTest& t : r.tests) {
    json findings = json::array();
    for (const DiagnosticFinding& f : t.findings) {
      findings.push_back({{"row", f.row}, {"pe", f.pe}, {"region", f.region},
                          {"detail", f.detail}, {"retired", f.retired},
                          {"remapped", f.remapped}});
    }
    tests.push_back({{"name", t.name},
                     {"outcome", OutcomeName(t.outcome)},
                     {"code", t.code},
                     {"code_name", t.code_name},
                     {"message", t.message},
                     {"action", t.action},
                     {"units_tested", t.units_tested},
                     {"failures", t.failures},
                     {"retired", t.retired},
                     {"findings", findings},
                     {"elapsed_s", t.elapsed_s},
                     {"device_ns", t.device_ns}});
  }
  return json{{"board", r.board},         {"level", r.level},
              {"outcome", OutcomeName(r.outcome)}, {"pes_retired", r.pes_retired},
              {"elapsed_s", r.elapsed_s}, {"tests", tests}};
}

// A one-line bar redrawn in place: "board 0 sram_sweep [#######.............]  35%".
void DrawProgress(const DiagnosticProgress& p, std::ostream& err) {
  constexpr int kWidth = 30;
  const double done = p.total == 0 ? 1.0 : static_cast<double>(p.done) / static_cast<double>(p.total);
  const int filled = static_cast<int>(done * kWidth);
  char buf[128];
  std::snprintf(buf, sizeof buf, "\rboard %u %-13s [%s%s] %3d%%", p.board, p.test.c_str(),
                std::string(static_cast<size_t>(filled), '#').c_str(),
                std::string(static_cast<size_t>(kWidth - filled), '.').c_str(),
                static_cast<int>(done * 100));
  err << buf << std::flush;
}

}  // namespace

void RenderDiagnostics(const std::vector<DiagnosticReport>& reports, bool as_json,
                       std::ostream& out) {
  if (as_json) {
    json boards = json::array();
    for (const DiagnosticReport& r : reports) boards.push_back(ReportJson(r));
    out << json{{"ok", true}, {"boards", boards}}.dump(-1, ' ', false,
                                                       json::error_handler_t::replace)
        << "\n";
    return;
  }
  for (const DiagnosticReport& r : reports) {
    char head[160];
    std::snprintf(head, sizeof head, "board %u: level %u %s in %.3f s, %llu PEs retired\n",
                  r.board, r.level, OutcomeName(r.outcome), r.elapsed_s,
                  static_cast<unsigned long long>(r.pes_retired));
    out << head;
    for (const DiagnosticTest& t : r.tests) {
      char line[64];
      std::snprintf(line, sizeof line, "  %-4s  %-13s ", OutcomeName(t.outcome), t.name.c_str());
      out << line;
      if (t.code != 0) out << t.code << " " << t.code_name << ": ";
      out << t.message << "\n";
      if (!t.action.empty()) out << "                      action: " << t.action << "\n";
      const size_t shown = std::min<size_t>(t.findings.size(), 4);
      for (size_t i = 0; i < shown; ++i) {
        out << "                      " << FindingText(t, t.findings[i]) << "\n";
      }
      if (t.failures > shown) {
        out << "                      ... " << (t.failures - shown) << " more (--json lists "
            << t.findings.size() << ")\n";
      }
    }
  }
}

int DiagnosticsExitCode(const std::vector<DiagnosticReport>& reports) {
  int worst = 0;
  for (const DiagnosticReport& r : reports) {
    for (const DiagnosticTest& t : r.tests) worst = std::max(worst, Severity(t.outcome));
  }
  return worst == 2 ? kExitHealthFail : worst == 1 ? kExitHealthWarn : kExitOk;
}

int RunDiagCommand(int32_t board, uint32_t level, bool as_json, bool progress, AdminClient& admin,
                   int timeout_ms, std::ostream& out, std::ostream& err) {
  auto fail = [&](const HostStatus& s) { return RequestFailed(s.error(), as_json, out, err); };
  std::vector<uint32_t> boards;
  if (board >= 0) {
    boards.push_back(static_cast<uint32_t>(board));
  } else {
    StatusReply status;
    if (HostStatus s = admin.QueryStatus(&status, timeout_ms); !s.ok()) return fail(s);
    for (const BoardInfo& b : status.boards) boards.push_back(b.index);
  }
  std::vector<DiagnosticReport> reports;
  for (uint32_t b : boards) {
    DiagnosticReport report;
    bool drew = false;
    const HostStatus s = admin.RunDiagnostics(
        b, level,
        [&](const DiagnosticProgress& p) {
          if (!progress) return;
          DrawProgress(p, err);
          drew = true;
        },
        &report, timeout_ms);
    if (drew) err << "\r" << std::string(64, ' ') << "\r" << std::flush;
    if (!s.ok()) return fail(s);
    reports.push_back(std::move(report));
  }
  RenderDiagnostics(reports, as_json, out);
  return DiagnosticsExitCode(reports);
}

}  // namespace wafer::host

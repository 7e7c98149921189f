#include "host/ctl/diag_command.h"

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/ctl/exit_codes.h"

namespace wafer::host {
namespace {

// A level-3 report of board 1: the link passed, the SRAM sweep retired one PE onto a spare
// (WARN), a skipped test, and one that found two failing links.
DiagnosticReport LevelThree() {
  DiagnosticReport r;
  r.board = 1;
  r.level = 3;
  r.outcome = WireDiagOutcome::kWarn;
  r.pes_retired = 1;
  r.elapsed_s = 0.25;
  DiagnosticTest link;
  link.name = "link";
  link.message = "board sim-1 (mini) answered Identify in 0.2 ms";
  DiagnosticTest sweep;
  sweep.name = "sram_sweep";
  sweep.outcome = WireDiagOutcome::kWarn;
  sweep.code = 241;
  sweep.code_name = "DIAG_SRAM_RETIRED";
  sweep.message = "1 of 16384 PEs failing";
  sweep.action = "failing PEs were retired onto spares";
  sweep.units_tested = 16384;
  sweep.failures = 1;
  sweep.retired = 1;
  sweep.findings = {DiagnosticFinding{3, 5, 0, 0x100, true, true}};
  DiagnosticTest skipped;
  skipped.name = "known_answer";
  skipped.outcome = WireDiagOutcome::kSkip;
  skipped.message = "the board is not ready";
  r.tests = {link, sweep, skipped};
  return r;
}

TEST(DiagCommandTest, ExitCodesFollowTheWorstTestAndSkipCountsAsPass) {
  std::vector<DiagnosticReport> reports = {LevelThree()};
  EXPECT_EQ(DiagnosticsExitCode(reports), kExitHealthWarn);
  reports[0].tests[1].outcome = WireDiagOutcome::kPass;
  EXPECT_EQ(DiagnosticsExitCode(reports), kExitOk);  // The SKIP does not count.
  DiagnosticReport failing = LevelThree();
  failing.board = 0;
  failing.tests[0].outcome = WireDiagOutcome::kFail;
  reports.push_back(failing);
  EXPECT_EQ(DiagnosticsExitCode(reports), kExitHealthFail);
}

TEST(DiagCommandTest, TextNamesEachTestItsCodeActionAndFindings) {
  std::ostringstream out;
  RenderDiagnostics({LevelThree()}, false, out);
  const std::string text = out.str();
  EXPECT_NE(text.find("board 1: level 3 WARN in 0.250 s, 1 PEs retired"), std::string::npos) << text;
  EXPECT_NE(text.find("PASS  link"), std::string::npos) << text;
  EXPECT_NE(text.find("WARN  sram_sweep    241 DIAG_SRAM_RETIRED: 1 of 16384 PEs failing"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("action: failing PEs were retired onto spares"), std::string::npos) << text;
  EXPECT_NE(text.find("row 3 PE 5 word 0x100 (retired, spare in place)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("SKIP  known_answer"), std::string::npos) << text;
}

TEST(DiagCommandTest, JsonCarriesEveryField) {
  std::ostringstream out;
  RenderDiagnostics({LevelThree()}, true, out);
  const nlohmann::json j = nlohmann::json::parse(out.str());
  ASSERT_TRUE(j["ok"].get<bool>());
  ASSERT_EQ(j["boards"].size(), 1u);
  const nlohmann::json& b = j["boards"][0];
  EXPECT_EQ(b["board"], 1);
  EXPECT_EQ(b["level"], 3);
  EXPECT_EQ(b["outcome"], "WARN");
  EXPECT_EQ(b["pes_retired"], 1);
  ASSERT_EQ(b["tests"].size(), 3u);
  const nlohmann::json& sweep = b["tests"][1];
  EXPECT_EQ(sweep["name"], "sram_sweep");
  EXPECT_EQ(sweep["code"], 241);
  EXPECT_EQ(sweep["units_tested"], 16384);
  EXPECT_EQ(sweep["findings"][0]["row"], 3);
  EXPECT_EQ(sweep["findings"][0]["detail"], 0x100);
  EXPECT_TRUE(sweep["findings"][0]["remapped"].get<bool>());
  EXPECT_EQ(b["tests"][2]["outcome"], "SKIP");
}

}  // namespace
}  // namespace wafer::host

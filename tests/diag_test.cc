// Diagnostics across a real daemon and two embedded boards serving one model as two replicas,
// over the admin socket and through waferctl: latent faults (a stuck SRAM bit, a failing fabric
// link) are invisible to level 1, found by level 2 (which drains the board, moves its running
// job to the other replica with the tokens of an undisturbed run, and undrains), and retired by
// level 3 into the defect map, after which every test passes again. A stuck bit under a model's
// weights retired by level 3 is repaired before the model's next job, which streams the tokens
// of an undisturbed run.
#include <chrono>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"
#include "tests/http_get.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 60000;
const std::string kBin = WAFER_BIN_DIR;

std::unique_ptr<DaemonHarness> TwoBoards() {
  return std::make_unique<DaemonHarness>([](DaemonConfig& c) {
    c.boards.resize(2);
    for (size_t i = 0; i < c.boards.size(); ++i) {
      c.boards[i].endpoint = "inproc://diag-board" + std::to_string(i);
      c.boards[i].pacing = "realtime";
    }
  });
}

OperationResult Operate(DaemonHarness& h, const AdminMessage& request) {
  OperationResult r;
  auto admin = h.NewAdminClient();
  EXPECT_TRUE(IsOk(admin->Operate(request, nullptr, &r, kTimeoutMs)));
  return r;
}

struct Diagnosed {
  DiagnosticReport report;
  std::vector<DiagnosticProgress> progress;
};

Diagnosed Diagnose(DaemonHarness& h, uint32_t board, uint32_t level) {
  Diagnosed run;
  auto admin = h.NewAdminClient();
  EXPECT_TRUE(IsOk(admin
                  ->RunDiagnostics(
                      board, level,
                      [&](const DiagnosticProgress& p) { run.progress.push_back(p); },
                      &run.report, kTimeoutMs)
                  ));
  return run;
}

const DiagnosticTest* Find(const DiagnosticReport& r, const std::string& name) {
  for (const DiagnosticTest& t : r.tests) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// Test names in the order they ran.
std::vector<std::string> Names(const DiagnosticReport& r) {
  std::vector<std::string> names;
  for (const DiagnosticTest& t : r.tests) names.push_back(t.name);
  return names;
}

BoardDetail Show(DaemonHarness& h, uint32_t board) {
  BoardDetail d;
  auto admin = h.NewAdminClient();
  EXPECT_TRUE(IsOk(admin->ShowBoard(board, &d, kTimeoutMs)));
  return d;
}

uint64_t RowFailed(const BoardDetail& d) {
  uint64_t n = 0;
  for (uint16_t f : d.row_failed) n += f;
  return n;
}

std::string Drain(DaemonHarness& h, uint32_t board) {
  StatusReply s;
  EXPECT_TRUE(h.NewAdminClient()->QueryStatus(&s, kTimeoutMs).ok());
  return board < s.boards.size() ? s.boards[board].drain : "?";
}

void LoadReplicas(DaemonHarness& h, const std::string& path) {
  for (uint32_t board : {0u, 1u}) {
    LoadModel load;
    load.path = path;
    load.name = "tiny";
    load.board = board;
    load.slots = 4;
    ASSERT_EQ(Operate(h, load).code, ErrorCode::kNone);
  }
}

// Runs waferctl against the daemon; returns its exit code and fills `out`.
int Ctl(DaemonHarness& h, const std::vector<std::string>& args, const std::string& dir,
        std::string* out) {
  std::vector<std::string> argv = {kBin + "/waferctl", "--admin-endpoint",
                                   h.daemon().admin_endpoint(), "--timeout-ms", "60000"};
  argv.insert(argv.end(), args.begin(), args.end());
  const int code = RunProgram(argv, dir + "/ctl.out");
  *out = ReadWholeFile(dir + "/ctl.out");
  return code;
}

// Row 100 of the mini preset's 128 holds no byte of "tiny" (health_test relies on it too).
constexpr uint32_t kUnusedRow = 100;

TEST(DiagTest, LatentFaultsAreFoundByLevelTwoAndRetiredByLevelThree) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  auto h = TwoBoards();
  LoadReplicas(*h, dir.path() + "/tiny");
  constexpr uint32_t kTokens = 1000;  // Of the 1024 a slot holds.
  const std::vector<uint32_t> reference = GreedyReference(*h, "tiny", kTokens, kTimeoutMs);
  ASSERT_EQ(reference.size(), kTokens);

  // Level 1 on a healthy board: four tests, all PASS; waferctl exits 0.
  Diagnosed one = Diagnose(*h, 0, 1);
  EXPECT_EQ(Names(one.report), (std::vector<std::string>{"link", "firmware", "sensors",
                                                         "heartbeat"}));
  EXPECT_EQ(one.report.outcome, WireDiagOutcome::kPass);
  std::string out;
  EXPECT_EQ(Ctl(*h, {"diag", "-r", "1", "--board", "0"}, dir.path(), &out), 0) << out;
  EXPECT_NE(out.find("board 0: level 1 PASS"), std::string::npos) << out;

  // Latent faults on board 0: a stuck bit in an unused PE and a failing link from another, in
  // two die regions (mini: 2 x 2 dies of 64 x 64 PEs).
  ASSERT_EQ(Operate(*h, InjectFault{0, 0, "sram_stuck_bit", 0, kUnusedRow, 7, 4096}).code,
            ErrorCode::kNone);
  ASSERT_EQ(Operate(*h, InjectFault{0, 0, "fabric_link", 0, kUnusedRow + 1, 100, 0}).code,
            ErrorCode::kNone);
  // Invisible to level 1.
  EXPECT_EQ(Diagnose(*h, 0, 1).report.outcome, WireDiagOutcome::kPass);

  // Level 2 while a job runs on board 0: the job moves to board 1 and ends as undisturbed.
  GreedyStream stream(*h, "tiny", kTokens, kTimeoutMs);
  for (int i = 0; i < 3000 && stream.streamed.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_GT(stream.streamed.load(), 0u);
  StatusReply status;
  ASSERT_TRUE(h->NewAdminClient()->QueryStatus(&status, kTimeoutMs).ok());
  uint32_t running_on = 2;
  for (const ModelInfo& m : status.models) {
    if (m.slots_used == 1) running_on = m.board;
  }
  const BoardDetail before = Show(*h, 0);
  Diagnosed two = Diagnose(*h, running_on, 2);
  stream.thread.join();
  ASSERT_TRUE(stream.outcome.accepted);
  EXPECT_EQ(stream.finished.reason, FinishReason::kLength) << stream.finished.detail;
  EXPECT_EQ(stream.tokens, reference);
  EXPECT_EQ(Drain(*h, running_on), "");  // The diagnostics drain is lifted.
  EXPECT_EQ(Names(two.report), (std::vector<std::string>{"link", "firmware", "sensors",
                                                         "heartbeat", "sram_unused",
                                                         "known_answer"}));
  EXPECT_FALSE(two.progress.empty());
  for (const DiagnosticProgress& p : two.progress) EXPECT_LE(p.done, p.total);

  // Level 2 on board 0 finds both, retires nothing: the stuck bit in the unused PE, and a wrong
  // known answer in each of the two die regions with a fault.
  if (running_on != 0) two = Diagnose(*h, 0, 2);
  EXPECT_EQ(two.report.outcome, WireDiagOutcome::kFail);
  const DiagnosticTest* unused = Find(two.report, "sram_unused");
  ASSERT_NE(unused, nullptr);
  EXPECT_EQ(unused->code, 231);
  EXPECT_EQ(unused->failures, 1u);
  ASSERT_EQ(unused->findings.size(), 1u);
  EXPECT_EQ(unused->findings[0].row, kUnusedRow);
  EXPECT_EQ(unused->findings[0].pe, 7u);
  EXPECT_EQ(unused->findings[0].detail, 4096u);
  EXPECT_FALSE(unused->findings[0].retired);
  const DiagnosticTest* kat = Find(two.report, "known_answer");
  ASSERT_NE(kat, nullptr);
  EXPECT_EQ(kat->code, 232);
  EXPECT_EQ(kat->units_tested, 4u);  // mini: 2 x 2 dies.
  EXPECT_EQ(kat->failures, 2u);
  EXPECT_EQ(two.report.pes_retired, 0u);
  EXPECT_EQ(Show(*h, 0).runtime_remaps, before.runtime_remaps);

  // Level 3 retires both PEs onto spares (the defect map grows by 2) and says so (WARN); the
  // known answer after the sweep passes; waferctl exits 5 and lists them in JSON.
  EXPECT_EQ(Ctl(*h, {"diag", "-r", "3", "--board", "0", "--json"}, dir.path(), &out), 5) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  const nlohmann::json& b = j["boards"][0];
  EXPECT_EQ(b["outcome"], "WARN");
  EXPECT_EQ(b["pes_retired"], 2);
  bool saw_sweep = false;
  bool saw_links = false;
  for (const nlohmann::json& t : b["tests"]) {
    if (t["name"] == "sram_sweep") {
      saw_sweep = true;
      EXPECT_EQ(t["code"], 241);
      EXPECT_EQ(t["retired"], 1);
      EXPECT_EQ(t["findings"][0]["row"], kUnusedRow);
      EXPECT_TRUE(t["findings"][0]["remapped"].get<bool>());
    }
    if (t["name"] == "known_answer") {
      EXPECT_EQ(t["outcome"], "PASS") << t;
    }
    if (t["name"] == "fabric_links") {
      saw_links = true;
      EXPECT_EQ(t["code"], 243);
      EXPECT_EQ(t["retired"], 1);
      EXPECT_EQ(t["findings"][0]["row"], kUnusedRow + 1);
      EXPECT_EQ(t["findings"][0]["pe"], 100);
    }
  }
  EXPECT_TRUE(saw_sweep && saw_links) << out;
  const BoardDetail after = Show(*h, 0);
  EXPECT_EQ(after.runtime_remaps, before.runtime_remaps + 2);
  EXPECT_EQ(RowFailed(after), RowFailed(before) + 2);
  EXPECT_EQ(Drain(*h, 0), "");

  // The spares took their places: every test passes again.
  Diagnosed again = Diagnose(*h, 0, 3);
  EXPECT_EQ(Names(again.report), (std::vector<std::string>{"link", "firmware", "sensors",
                                                           "heartbeat", "sram_sweep",
                                                           "fabric_links", "known_answer"}));
  EXPECT_EQ(again.report.outcome, WireDiagOutcome::kPass);
  // Progress came for each firmware test, ending with its last band (done == total).
  for (const std::string test : {"sram_sweep", "fabric_links", "known_answer"}) {
    const DiagnosticProgress* last = nullptr;
    for (const DiagnosticProgress& p : again.progress) {
      if (p.test == test) last = &p;
    }
    ASSERT_NE(last, nullptr) << test;
    EXPECT_EQ(last->done, last->total) << test;
    EXPECT_GT(last->total, 0u) << test;
  }
  EXPECT_EQ(again.report.pes_retired, 0u);
  EXPECT_EQ(Ctl(*h, {"diag", "-r", "2"}, dir.path(), &out), 0) << out;  // Every board.
  EXPECT_NE(out.find("board 0: level 2 PASS"), std::string::npos) << out;
  EXPECT_NE(out.find("board 1: level 2 PASS"), std::string::npos) << out;

  // Counted for the dashboards.
  const std::string metrics = HttpGet(h->daemon().metrics_port(), "/metrics");
  for (const std::string& line :
       {std::string("wafer_diagnostics_runs_total{board=\"0\",level=\"3\",outcome=\"WARN\"} 1"),
        std::string("wafer_diagnostics_runs_total{board=\"0\",level=\"3\",outcome=\"PASS\"} 1"),
        std::string("wafer_diagnostics_runs_total{board=\"0\",level=\"2\",outcome=\"FAIL\"} "),
        std::string("wafer_diagnostics_pes_retired_total{board=\"0\"} 2")}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line;
  }
}

TEST(DiagTest, AStuckBitUnderAModelIsRetiredAndTheModelRepairedBeforeItsNextJob) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  DaemonHarness h;  // One board.
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 4), ErrorCode::kNone);
  constexpr uint32_t kTokens = 200;
  const std::vector<uint32_t> reference = GreedyReference(h, "tiny", kTokens, kTimeoutMs);

  // PE (0, 0) holds the first bytes of the model's first tensor.
  ASSERT_EQ(Operate(h, InjectFault{0, 0, "sram_stuck_bit", 0, 0, 0, 0}).code, ErrorCode::kNone);
  Diagnosed two = Diagnose(h, 0, 2);  // Level 2 skips PEs a model uses.
  EXPECT_EQ(Find(two.report, "sram_unused")->failures, 0u);
  Diagnosed three = Diagnose(h, 0, 3);
  const DiagnosticTest* sweep = Find(three.report, "sram_sweep");
  ASSERT_NE(sweep, nullptr);
  EXPECT_EQ(sweep->code, 241);
  EXPECT_EQ(sweep->retired, 1u);
  EXPECT_EQ(three.report.pes_retired, 1u);

  // The next job finds the model's weights gone from that PE, the daemon rewrites them from the
  // checkpoint, and the job streams what an undisturbed run streams.
  EXPECT_EQ(GreedyReference(h, "tiny", kTokens, kTimeoutMs), reference);
  // The board's log has the sweep's finding, the retired PE and the repair.
  std::string codes;
  uint64_t from = 0;
  for (int page = 0; page < 8; ++page) {
    BoardLogReply log;
    ASSERT_TRUE(h.NewAdminClient()->ReadBoardLog(0, from, &log, kTimeoutMs).ok());
    for (const BoardLogEntry& e : log.records) codes += e.code + " ";
    if (log.records.empty()) break;
    from = log.next_sequence;
  }
  for (const char* code : {"kDiagnosticRun", "kPeFailed", "kModelRepaired"}) {
    EXPECT_NE(codes.find(code), std::string::npos) << code << " in " << codes;
  }
}

TEST(DiagTest, APeOutOfServiceWithNoSpareLeftIsCapacityLost) {
  // Health rules off: they would drain and reset a board whose row runs out of spares.
  DaemonHarness h([](DaemonConfig& c) { c.health.enabled = false; });
  // The mini preset has 4 spares per row: 4 stopped PEs of unused row 100 take them all (fewer
  // when the row has manufacturing defects), a 5th stays out of service with no spare.
  for (uint32_t pe = 0; pe < 5; ++pe) {
    ASSERT_EQ(Operate(h, InjectFault{0, 0, "pe_stop", 0, kUnusedRow, 10 + pe, 0}).code,
              ErrorCode::kNone);
  }
  Diagnosed three = Diagnose(h, 0, 3);
  const DiagnosticTest* sweep = Find(three.report, "sram_sweep");
  ASSERT_NE(sweep, nullptr);
  EXPECT_EQ(sweep->code, 242) << sweep->message;
  EXPECT_EQ(sweep->outcome, WireDiagOutcome::kFail);
  EXPECT_GE(sweep->failures, 1u);
  EXPECT_EQ(sweep->retired, 0u);  // Already out of service: nothing to retire again.
  EXPECT_EQ(three.report.outcome, WireDiagOutcome::kFail);
  EXPECT_EQ(three.report.pes_retired, 0u);
}

TEST(DiagTest, RefusalsAreTypedAndTheDaemonKeepsServing) {
  TempDir dir;
  DaemonHarness h;
  auto admin = h.NewAdminClient();
  DiagnosticReport report;
  HostStatus no_board = admin->RunDiagnostics(7, 1, nullptr, &report, kTimeoutMs);
  ASSERT_EQ(no_board.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(no_board.error().message.find("INVALID_ARGUMENT: board 7 is not configured"),
            std::string::npos)
      << no_board.error().message;
  HostStatus bad_level = admin->RunDiagnostics(0, 4, nullptr, &report, kTimeoutMs);
  ASSERT_EQ(bad_level.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(bad_level.error().message.find("RunDiagnostics.level: 4 is not 1, 2 or 3"),
            std::string::npos)
      << bad_level.error().message;
  std::string out;
  EXPECT_EQ(Ctl(h, {"diag"}, dir.path(), &out), 2) << out;  // No level: usage.
  EXPECT_EQ(Ctl(h, {"diag", "-r", "1"}, dir.path(), &out), 0) << out;
}

}  // namespace
}  // namespace wafer::testing

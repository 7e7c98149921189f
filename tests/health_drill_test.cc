// The fault drill of issue 13: each fault kind of the simulator, injected on a board with running
// jobs, driven through what the daemon does about it (rule, incident, drain, reset, return to
// service; or the repair, the watchdog or the board-loss path where that is the right answer),
// end to end over real sockets, with every accepted job accounted for.
//
// Each test runs a real daemon with two boards serving the model "tiny" as two replicas of
// kSlots slots, starts kJobs greedy streaming jobs (spread over both replicas), injects one fault
// on a board that runs some of them, and asserts order and counts, never timings: the code that
// opened the incident (or the rule that warned), the drain and its reason, that every job
// finished (kLength) with the tokens of an undisturbed run (0 lost), that the jobs on the faulted
// board finished on the other replica where the daemon moves them (no token was generated on the
// faulted board after it let them go), and that the board came back into service with nothing
// left drained or open. Each
// prints one line for the record (timings measured on this machine, not asserted):
//
//   drill <kind>: code <N> detect <ms> drain <ms> moved <n> lost <n> return <ms>
//
// detect: fault injected -> incident opened (HealthReply.opened_unix_ms), or, where no incident
// is the right answer, -> the daemon was seen to act (rule WARN, board offline, model repaired);
// drain: fault -> the board's drain reason was seen set ("-" when the right answer is no drain);
// moved: jobs that ran on the faulted board and finished on the other replica; lost: jobs that
// did not finish with the undisturbed tokens; return: incident opened -> closed (the board back
// in service), or, without an incident, fault -> the board's replica serving again ("-" when it
// never left service).
//
// The boards run a slowed mini preset (kRoundTripUs per Step, real-time pacing): a job of kTokens
// streams for several seconds, so it is still running when a fault is acted on.
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "board_sim/board_runner.h"
#include "tests/child_process.h"
#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"
#include "tests/http_get.h"
#include "tests/slow_preset.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 30000;
constexpr uint32_t kTokens = 1000;  // The tiny model's context is 1,024 tokens.
constexpr size_t kJobs = 4;
constexpr uint32_t kSlots = 4;  // One replica can hold every job: the moved ones never wait.
// A job of kTokens streams for about 8 s (125 Steps of 8 tokens; a Step takes about twice the
// host round trip).
constexpr int kRoundTripUs = 30000;
// Polls every 20 ms; a bound of this many turns (about 90 s on an idle machine) per wait.
constexpr int kPollTurns = 4500;
// thermal_runaway: the region's thermal resistance times this. From about 40 C the region passes
// 70 C within a few seconds and settles far above it while the cooling stays broken.
constexpr double kCoolingLoss = 20;
const char kHealthDrain[] = "health incident (evacuate)";
const std::string kBin = WAFER_BIN_DIR;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What one drill measured, for the record. -1: does not apply.
struct Record {
  int code = 0;
  int64_t detect_ms = -1;
  int64_t drain_ms = -1;
  size_t moved = 0;
  size_t lost = 0;
  int64_t return_ms = -1;
};

std::string Ms(int64_t ms) { return ms < 0 ? "-" : std::to_string(ms); }

void Print(const std::string& kind, const Record& r) {
  std::printf("drill %s: code %d detect %s drain %s moved %zu lost %zu return %s\n", kind.c_str(),
              r.code, Ms(r.detect_ms).c_str(), Ms(r.drain_ms).c_str(), r.moved, r.lost,
              Ms(r.return_ms).c_str());
  std::fflush(stdout);
}

struct DrillOptions {
  bool process_board = false;  // Board 1 is a wafer-sim process on ipc:// (process_crash).
  std::function<void(HealthConfig&)> health;  // Adjusts the drill's fast health settings.
};

class HealthDrillTest : public ::testing::Test {
 protected:
  // The model, the slowed preset and the undisturbed run's tokens, once for every drill: the
  // tokens of a greedy job do not depend on the board's pacing or on which board runs it.
  static void SetUpTestSuite() {
    shared_ = new TempDir;
    if (!WriteModel(shared_->path() + "/tiny", "tiny", 5) ||
        !WriteSlowPreset(shared_->path() + "/slow.yaml", kRoundTripUs)) {
      return;
    }
    DaemonHarness h([](DaemonConfig& c) { c.boards[0].endpoint = "inproc://drill-reference"; });
    if (h.Load(shared_->path() + "/tiny", "tiny", 1) != ErrorCode::kNone) return;
    reference_ = GreedyReference(h, "tiny", kTokens, kTimeoutMs);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  void SetUp() override { ASSERT_EQ(reference_.size(), kTokens); }

  // Two boards (board 1 a wafer-sim process when asked), "tiny" on both, health rules that act
  // within a second or two: the incident opens at the board's next readings, a reset follows
  // after 100 ms, and a board that passed for 1 s after it returns to service.
  void Start(const DrillOptions& o = {}) {
    if (o.process_board) {
      sim_ep_ = "ipc://" + dir_.path() + "/board1.sock";
      StartSim();
    }
    const std::string preset = shared_->path() + "/slow.yaml";
    h_ = std::make_unique<DaemonHarness>([&](DaemonConfig& c) {
      c.boards.resize(2);
      for (size_t i = 0; i < c.boards.size(); ++i) {
        c.boards[i].endpoint = "inproc://drill-board" + std::to_string(i);
        c.boards[i].preset = preset;
        c.boards[i].pacing = "realtime";
        // A hung board is given up on after this (a Step or a heartbeat without an answer).
        c.boards[i].timeout_ms = 2000;
      }
      if (o.process_board) c.boards[1].endpoint = sim_ep_;
      c.health.window_s = 2;
      c.health.recovery_backoff_ms = 100;
      c.health.return_after_s = 1;
      c.health.max_recoveries = 3;
      if (o.health) o.health(c.health);
    });
    admin_ = h_->NewAdminClient();
    for (uint32_t board : {0u, 1u}) {
      LoadModel load;
      load.path = shared_->path() + "/tiny";
      load.name = "tiny";
      load.board = board;
      load.slots = kSlots;
      ASSERT_EQ(Operate(load).code, ErrorCode::kNone) << "load on board " << board;
    }
  }

  // A wafer-sim process for board 1, as a supervisor would start (and restart) it; returns once
  // it listens.
  void StartSim() {
    const std::string log = dir_.path() + "/sim." + std::to_string(++sim_starts_) + ".log";
    sim_.Start({kBin + "/wafer-sim", "--endpoint", sim_ep_, "--preset",
                shared_->path() + "/slow.yaml", "--pacing", "realtime", "--board-id", "sim-1"},
               log);
    for (int i = 0; i < 500 && ReadWholeFile(log).find("serving") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_NE(ReadWholeFile(log).find("serving"), std::string::npos) << ReadWholeFile(log);
  }

  OperationResult Operate(const AdminMessage& request) {
    OperationResult r;
    EXPECT_TRUE(IsOk(admin_->Operate(request, nullptr, &r, kTimeoutMs)));
    return r;
  }
  OperationResult Inject(uint32_t board, const std::string& kind, uint32_t region, uint32_t row,
                         uint32_t pe, double value) {
    return Operate(InjectFault{0, board, kind, region, row, pe, value});
  }
  HealthReply Health() {
    HealthReply r;
    EXPECT_TRUE(IsOk(admin_->QueryHealth(-1, &r, kTimeoutMs)));
    return r;
  }
  StatusReply Status() {
    StatusReply r;
    EXPECT_TRUE(IsOk(admin_->QueryStatus(&r, kTimeoutMs)));
    return r;
  }
  // "tiny"'s replica on `board` (an empty ModelInfo when the status has none).
  static ModelInfo ReplicaOn(const StatusReply& s, uint32_t board) {
    for (const ModelInfo& m : s.models) {
      if (m.board == board) return m;
    }
    return ModelInfo{};
  }
  // The state of `rule` ("heartbeat", "throttling", ...) on a board.
  static HealthRuleState RuleOf(const BoardHealthInfo& b, const std::string& rule) {
    for (const HealthRuleState& r : b.rules) {
      if (r.rule == rule) return r;
    }
    return HealthRuleState{};
  }
  // Tokens generated by "tiny"'s replica on `board` so far (wafer_replica_tokens_total).
  double ReplicaTokens(uint32_t board) {
    const std::string text = HttpGet(h_->daemon().metrics_port(), "/metrics");
    const std::string series =
        "\nwafer_replica_tokens_total{board=\"" + std::to_string(board) + "\",model=\"tiny\"} ";
    const size_t at = text.find(series);
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size()));
  }

  // Polls `done` every 20 ms, at most kPollTurns times; true once it holds.
  static bool Poll(const std::function<bool()>& done) {
    for (int i = 0; i < kPollTurns; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // Starts kJobs streaming jobs, waits until each has streamed a token, and returns the board
  // that runs the most of them (or `board` when given, which must run at least one).
  uint32_t StartJobs(int board = -1) {
    for (size_t i = 0; i < kJobs; ++i) {
      jobs_.push_back(std::make_unique<GreedyStream>(*h_, "tiny", kTokens, kTimeoutMs));
    }
    EXPECT_TRUE(Poll([&] {
      for (const auto& j : jobs_) {
        if (j->streamed.load() == 0) return false;
      }
      return true;
    })) << "the jobs did not all start streaming";
    const StatusReply s = Status();
    const uint32_t on0 = ReplicaOn(s, 0).slots_used, on1 = ReplicaOn(s, 1).slots_used;
    EXPECT_EQ(on0 + on1, kJobs) << "every job runs, on one replica or the other";
    const uint32_t chosen = board >= 0 ? static_cast<uint32_t>(board) : (on1 > on0 ? 1 : 0);
    EXPECT_GT(ReplicaOn(s, chosen).slots_used, 0u) << "board " << chosen << " runs no job";
    return chosen;
  }

  // Waits for every job; each must have finished (kLength) with the undisturbed run's tokens.
  // Returns how many did not (lost).
  size_t FinishJobs() {
    size_t lost = 0;
    for (size_t i = 0; i < jobs_.size(); ++i) {
      GreedyStream& j = *jobs_[i];
      j.thread.join();
      const bool ok = j.outcome.accepted && j.finished.reason == FinishReason::kLength &&
                      j.tokens == reference_;
      EXPECT_TRUE(j.outcome.accepted) << "job " << i;
      EXPECT_EQ(j.finished.reason, FinishReason::kLength)
          << "job " << i << ": " << FinishReasonName(j.finished.reason) << " "
          << j.finished.detail;
      EXPECT_EQ(j.tokens.size(), kTokens) << "job " << i;
      EXPECT_TRUE(j.tokens == reference_) << "job " << i << " streamed other tokens";
      if (!ok) ++lost;
    }
    return lost;
  }

  // The incident path: `inject` on `board` must open an incident of `code` that drains
  // the board with the incident as the reason, moves its jobs to the other replica, resets the
  // board (at least once) and returns it to service with the incident closed. `undo`, when
  // given, runs once the board is drained: the operator's repair of a cause a reset cannot cure.
  Record IncidentDrill(uint32_t board, uint16_t code, const std::function<void()>& inject,
                       const std::function<void()>& undo = nullptr) {
    Record rec;
    rec.code = code;
    // Until the incident opens: how many jobs the board runs (the ones the drain will move).
    // A reading taken in the turn that sees the incident may already show them gone.
    uint32_t running = ReplicaOn(Status(), board).slots_used;
    const int64_t t0 = UnixMs();
    inject();
    HealthReply r;
    int64_t seen_ms = 0;
    const bool opened = Poll([&] {
      const uint32_t now_running = ReplicaOn(Status(), board).slots_used;
      r = Health();
      seen_ms = UnixMs();
      if (r.boards[board].open.has_value() || !r.boards[board].closed.empty()) return true;
      running = now_running;
      return false;
    });
    EXPECT_TRUE(opened) << "no incident on board " << board;
    if (!opened) return rec;
    const HealthIncidentInfo incident =
        r.boards[board].open ? *r.boards[board].open : r.boards[board].closed[0];
    EXPECT_EQ(incident.code, code) << incident.code_name << ": " << incident.message;
    EXPECT_EQ(incident.board, board);
    rec.detect_ms = incident.opened_unix_ms - t0;
    // The drain comes with the incident, in the same turn of the daemon's loop.
    EXPECT_EQ(r.boards[board].drain, kHealthDrain) << "state " << incident.state;
    if (r.boards[board].drain == kHealthDrain) rec.drain_ms = seen_ms - t0;
    // Evacuated: the board's replica lets its jobs go (they queue again and run on the other).
    EXPECT_TRUE(Poll([&] { return ReplicaOn(Status(), board).slots_used == 0; }))
        << "board " << board << " kept its jobs";
    const double tokens_when_drained = ReplicaTokens(board);
    if (undo) undo();

    // Reset (at least once), passed for return_after_s: back in service, the incident closed.
    const bool closed = Poll([&] {
      r = Health();
      return !r.boards[board].open && !r.boards[board].closed.empty() &&
             r.boards[board].drain.empty();
    });
    EXPECT_TRUE(closed) << "board " << board << " did not return: "
                        << (r.boards[board].open ? r.boards[board].open->last_action : "");
    if (closed) {
      EXPECT_EQ(r.boards[board].closed.size(), 1u);
      const HealthIncidentInfo& c = r.boards[board].closed[0];
      EXPECT_EQ(c.id, incident.id);
      EXPECT_EQ(c.code, code);
      EXPECT_EQ(c.state, "closed");
      EXPECT_GE(c.recoveries, 1u);
      EXPECT_NE(c.last_action.find("returned to service"), std::string::npos) << c.last_action;
      rec.return_ms = c.closed_unix_ms - c.opened_unix_ms;
    }
    const uint32_t other = 1 - board;
    EXPECT_FALSE(r.boards[other].open.has_value());
    EXPECT_TRUE(r.boards[other].closed.empty());
    EXPECT_EQ(r.boards[other].drain, "");

    rec.lost = FinishJobs();
    // Nothing ran on the drained board after it let its jobs go: they finished on the other.
    EXPECT_EQ(ReplicaTokens(board), tokens_when_drained);
    if (ReplicaTokens(board) == tokens_when_drained) rec.moved = running;
    EXPECT_GT(rec.moved, 0u) << "the fault was acted on after the board's jobs had ended";
    return rec;
  }

  TempDir dir_;
  std::string sim_ep_;
  int sim_starts_ = 0;
  ChildProcess sim_;  // Outlives the daemon (declared before it).
  std::unique_ptr<DaemonHarness> h_;
  std::unique_ptr<AdminClient> admin_;
  std::vector<std::unique_ptr<GreedyStream>> jobs_;

  static TempDir* shared_;
  static std::vector<uint32_t> reference_;
};

TempDir* HealthDrillTest::shared_ = nullptr;
std::vector<uint32_t> HealthDrillTest::reference_;

// An uncorrectable ECC error (on a PE no model uses, row 100 of 128, so that what acts is the
// health rule and not a model repair): FAIL 131 at the board's next readings, drained and reset;
// the reset clears the board's error count and it returns.
TEST_F(HealthDrillTest, EccUncorrectable) {
  Start();
  const uint32_t board = StartJobs();
  const Record rec = IncidentDrill(board, 131, [&] {
    ASSERT_EQ(Inject(board, "ecc_uncorrectable", 0, 100, 0, 0).code, ErrorCode::kNone);
  });
  EXPECT_EQ(rec.lost, 0u);
  Print("ecc_uncorrectable", rec);
}

// Corrected ECC errors: 100 at once is 100 in the 2 s window, 3,000 a minute, over the failure
// rate of 1,000 a minute: FAIL 122, drained, reset (which restarts the board's count), returned.
TEST_F(HealthDrillTest, EccCorrectable) {
  Start();
  const uint32_t board = StartJobs();
  const Record rec = IncidentDrill(board, 122, [&] {
    ASSERT_EQ(Inject(board, "ecc_correctable", 0, 100, 0, 100).code, ErrorCode::kNone);
  });
  EXPECT_EQ(rec.lost, 0u);
  Print("ecc_correctable", rec);
}

// A noisy host link: bursts of 3 bad frames, each within the link's 3 resends (every command
// still gets through), 20 times in quick succession: 60 CRC errors within a second or so, well
// over the 34 in the 2 s window that make the failure rate of 1,000 a minute: FAIL 142, drained,
// reset, returned. (A burst of 3
// stays pending until the next frame consumes it: each injection's own frame does, so no command
// ever sees more than 3 failures in a row.)
TEST_F(HealthDrillTest, LinkCrc) {
  Start();
  const uint32_t board = StartJobs();
  const Record rec = IncidentDrill(board, 142, [&] {
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(Inject(board, "link_crc", 0, 0, 0, 3).code, ErrorCode::kNone) << "burst " << i;
    }
  });
  EXPECT_EQ(rec.lost, 0u);
  Print("link_crc", rec);
}

// Region 0 of the board loses cooling: its thermal resistance times kCoolingLoss. The drill's
// temperature thresholds are lowered (warning 60 C, critical 70 C, beside the defaults of 85 and
// 100) so that the rule judges the rise well before the firmware's own trip at 105 C: with the
// defaults the 5 C between the rule and the trip pass in under a second (one reading) at this
// rate, and the board would halt first (the incident is 102 either way, from thermal_trip).
// FAIL 102, drained. A reset alone cannot cure it: while the cooling stays broken the region is
// still hot whenever the board is ready again, each reset is judged FAIL, and after
// max_recoveries the board would be quarantined (raised here to 8 so that the region has time to
// cool). The operator restores the cooling once the board is drained (thermal_runaway 1); the
// region cools (time constant 20 s), the resets fail until it is below 70 C, then one passes and
// the board returns by itself.
TEST_F(HealthDrillTest, ThermalRunaway) {
  Start({false, [](HealthConfig& c) {
           c.temperature_warn_c = 60;
           c.temperature_critical_c = 70;
           c.max_recoveries = 8;
         }});
  const uint32_t board = StartJobs();
  const Record rec = IncidentDrill(
      board, 102,
      [&] {
        ASSERT_EQ(Inject(board, "thermal_runaway", 0, 0, 0, kCoolingLoss).code, ErrorCode::kNone);
      },
      [&] { ASSERT_EQ(Inject(board, "thermal_runaway", 0, 0, 0, 1).code, ErrorCode::kNone); });
  EXPECT_EQ(rec.lost, 0u);
  Print("thermal_runaway", rec);
}

// A power cap of 150 W (mini peaks at 280 W, idles at 75 W) lowers every clock to fit: the board
// throttles. Throttling is a WARN (111) unless health.throttling_fails: no incident, no drain;
// the jobs run on where they are, slower. The operator lifts the cap once the warning shows
// (power_cap 0) and the rule passes again. Nothing moved, nothing lost, never out of service.
TEST_F(HealthDrillTest, PowerCapWarnsAndDoesNotDrain) {
  Start();
  const uint32_t board = StartJobs();
  const uint32_t running = ReplicaOn(Status(), board).slots_used;
  Record rec;
  const int64_t t0 = UnixMs();
  ASSERT_EQ(Inject(board, "power_cap", 0, 0, 0, 150).code, ErrorCode::kNone);
  HealthReply r;
  ASSERT_TRUE(Poll([&] {
    r = Health();
    return RuleOf(r.boards[board], "throttling").level == WireHealthLevel::kWarn;
  })) << "the capped board never showed as throttled";
  rec.detect_ms = UnixMs() - t0;
  rec.code = RuleOf(r.boards[board], "throttling").code;
  EXPECT_EQ(rec.code, 111);
  EXPECT_EQ(r.boards[board].level, WireHealthLevel::kWarn);
  EXPECT_FALSE(r.boards[board].open.has_value());
  EXPECT_EQ(r.boards[board].drain, "");
  // The jobs run on where they are.
  EXPECT_EQ(ReplicaOn(Status(), board).slots_used, running);
  const double tokens_capped = ReplicaTokens(board);
  EXPECT_TRUE(Poll([&] { return ReplicaTokens(board) > tokens_capped; }))
      << "the capped board generated nothing";
  ASSERT_EQ(Inject(board, "power_cap", 0, 0, 0, 0).code, ErrorCode::kNone);
  EXPECT_TRUE(Poll([&] {
    r = Health();
    return RuleOf(r.boards[board], "throttling").level == WireHealthLevel::kPass;
  })) << "still throttled after the cap was lifted";
  rec.lost = FinishJobs();
  EXPECT_EQ(rec.lost, 0u);
  r = Health();
  for (const BoardHealthInfo& b : r.boards) {
    EXPECT_FALSE(b.open.has_value()) << "board " << b.board;
    EXPECT_TRUE(b.closed.empty()) << "board " << b.board << ": " << b.closed[0].code_name;
    EXPECT_EQ(b.drain, "") << "board " << b.board;
  }
  Print("power_cap", rec);  // Moved 0: the jobs finished where they were.
}

// A PE that holds the model's weights stops (row 0, PE 0: the start of the embedding). The
// firmware remaps a spare into its place and reports the tensors it held; the model's next Step
// fails (DATA_LOSS), the daemon queues the replica's jobs again, re-stages those tensors in place
// (in milliseconds), and the replica serves again. That is the repair path, not an incident: one
// failed PE with spares left is no reason to drain (spare_pes passes). The re-queued jobs
// recompute their prompt and output so far on whichever replica has the fewest jobs: with an
// instant repair that is mostly the repaired one, so "moved" is usually 0 (the print says how
// many tokens the repaired replica generated after the repair). detect: the daemon was seen to
// act (the replica let its jobs go, or the repair was seen done); return: the repair was seen
// done with the replica ready.
TEST_F(HealthDrillTest, PeStopOnAModelPeIsRepairedInPlace) {
  Start();
  const uint32_t board = StartJobs();
  Record rec;
  const uint32_t running = ReplicaOn(Status(), board).slots_used;
  const double tokens_before = ReplicaTokens(board);
  const int64_t t0 = UnixMs();
  ASSERT_EQ(Inject(board, "pe_stop", 0, 0, 0, 0).code, ErrorCode::kNone);
  ASSERT_TRUE(Poll([&] {
    BoardLogReply log;
    bool repaired = false;
    if (admin_->ReadBoardLog(board, 0, &log, kTimeoutMs).ok()) {
      for (const BoardLogEntry& e : log.records) repaired |= e.code == "kModelRepaired";
    }
    const ModelInfo replica = ReplicaOn(Status(), board);
    if (rec.detect_ms < 0 && (repaired || replica.slots_used == 0)) rec.detect_ms = UnixMs() - t0;
    return repaired && replica.state == ModelState::kReady;
  })) << "the model was not repaired in place";
  rec.return_ms = UnixMs() - t0;
  const double tokens_repaired = ReplicaTokens(board);
  rec.lost = FinishJobs();
  EXPECT_EQ(rec.lost, 0u);
  const double after = ReplicaTokens(board) - tokens_repaired;
  if (after == 0) rec.moved = running;
  const HealthReply r = Health();
  for (const BoardHealthInfo& b : r.boards) {
    EXPECT_FALSE(b.open.has_value()) << "board " << b.board << ": " << b.open->code_name;
    EXPECT_TRUE(b.closed.empty()) << "board " << b.board << ": " << b.closed[0].code_name;
    EXPECT_EQ(b.drain, "") << "board " << b.board;
  }
  EXPECT_EQ(RuleOf(r.boards[board], "spare_pes").level, WireHealthLevel::kPass)
      << RuleOf(r.boards[board], "spare_pes").message;
  std::printf("pe_stop: %u jobs re-queued from board %u (%.0f tokens generated there before the "
              "fault), which then generated %.0f tokens after the repair\n",
              running, board, tokens_before, after);
  Print("pe_stop", rec);
}

// The firmware hangs: it answers nothing, its heartbeat included, until a Reset. The board
// worker gives up on it after timeout_ms (a heartbeat or a Step without an answer), takes the
// board offline (the replica's jobs queue again and run on the other replica), pulls the reset
// line, boots it, and the daemon reloads the model. One hang is WARN 161 (the watchdog cured
// it); only repeated hangs (health.heartbeat_misses_fail in window_s) are a FAIL and an incident.
// detect: the board was seen offline; return: its replica was seen serving again.
TEST_F(HealthDrillTest, FirmwareHangIsResetByTheWatchdog) {
  Start();
  const uint32_t board = StartJobs();
  Record rec;
  const uint32_t running = ReplicaOn(Status(), board).slots_used;
  const int64_t t0 = UnixMs();
  ASSERT_EQ(Inject(board, "firmware_hang", 0, 0, 0, 0).code, ErrorCode::kNone);
  bool warned = false;
  const auto watch = [&] {
    const HealthRuleState beat = RuleOf(Health().boards[board], "heartbeat");
    if (beat.level == WireHealthLevel::kWarn && beat.code == 161) warned = true;
    EXPECT_NE(beat.level, WireHealthLevel::kFail) << beat.message;
  };
  ASSERT_TRUE(Poll([&] {
    watch();
    return Status().boards[board].state != BoardState::kReady;
  })) << "the hung board was never taken offline";
  rec.detect_ms = UnixMs() - t0;
  ASSERT_TRUE(Poll([&] {
    watch();
    const StatusReply s = Status();
    return s.boards[board].state == BoardState::kReady &&
           ReplicaOn(s, board).state == ModelState::kReady;
  })) << "the board did not come back";
  rec.return_ms = UnixMs() - t0;
  const double tokens_back = ReplicaTokens(board);
  Poll([&] {
    watch();
    return warned;
  });
  EXPECT_TRUE(warned) << "the hang was never counted as a missed heartbeat";
  rec.code = warned ? 161 : 0;
  rec.lost = FinishJobs();
  EXPECT_EQ(rec.lost, 0u);
  EXPECT_EQ(ReplicaTokens(board), tokens_back);
  if (ReplicaTokens(board) == tokens_back) rec.moved = running;
  EXPECT_GT(rec.moved, 0u);
  const HealthReply r = Health();
  for (const BoardHealthInfo& b : r.boards) {
    EXPECT_FALSE(b.open.has_value()) << "board " << b.board << ": " << b.open->code_name;
    EXPECT_TRUE(b.closed.empty()) << "board " << b.board << ": " << b.closed[0].code_name;
    EXPECT_EQ(b.drain, "") << "board " << b.board;
  }
  Print("firmware_hang", rec);
}

// The wafer-sim process of board 1 exits at once (process_crash; embedded boards refuse it). The
// InjectFault gets no answer: after timeout_ms the board worker takes the board offline (its
// jobs queue again and run on board 0's replica). A supervisor starts wafer-sim again on the same
// endpoint (here: the test, as soon as the process has exited); the worker reconnects, boots the
// fresh board and the daemon reloads the model. No health rule judges a lost board: it is the
// board-loss path, no incident, no drain. detect: the InjectFault was answered (the daemon gave
// up on the board); return: board 1's replica was seen serving again.
TEST_F(HealthDrillTest, ProcessCrashIsABoardLoss) {
  Start({true, nullptr});
  const uint32_t board = StartJobs(1);
  Record rec;
  const uint32_t running = ReplicaOn(Status(), board).slots_used;
  const int64_t t0 = UnixMs();
  OperationResult injected;
  std::atomic<int64_t> answered_ms{0};
  std::thread inject([&] {
    auto admin = h_->NewAdminClient();
    EXPECT_TRUE(IsOk(admin->Operate(InjectFault{0, board, "process_crash", 0, 0, 0, 0}, nullptr,
                               &injected, kTimeoutMs)
                    ));
    answered_ms = UnixMs();
  });
  const bool exited = sim_.WaitExit(kTimeoutMs);
  EXPECT_TRUE(exited) << "wafer-sim did not crash";
  if (exited) {
    EXPECT_TRUE(WIFEXITED(sim_.exit_status()) &&
                WEXITSTATUS(sim_.exit_status()) == sim::kCrashExitCode)
        << "status " << sim_.exit_status();
    StartSim();
  }
  inject.join();
  EXPECT_NE(injected.code, ErrorCode::kNone) << "the crashed board answered";
  rec.detect_ms = answered_ms.load() - t0;
  ASSERT_TRUE(Poll([&] {
    const StatusReply s = Status();
    return s.boards[board].state == BoardState::kReady &&
           ReplicaOn(s, board).state == ModelState::kReady;
  })) << "board 1 did not come back";
  rec.return_ms = UnixMs() - t0;
  const double tokens_back = ReplicaTokens(board);
  rec.lost = FinishJobs();
  EXPECT_EQ(rec.lost, 0u);
  EXPECT_EQ(ReplicaTokens(board), tokens_back);
  if (ReplicaTokens(board) == tokens_back) rec.moved = running;
  EXPECT_GT(rec.moved, 0u);
  const HealthReply r = Health();
  for (const BoardHealthInfo& b : r.boards) {
    EXPECT_FALSE(b.open.has_value()) << "board " << b.board << ": " << b.open->code_name;
    EXPECT_TRUE(b.closed.empty()) << "board " << b.board << ": " << b.closed[0].code_name;
    EXPECT_EQ(b.drain, "") << "board " << b.board;
  }
  rec.code = RuleOf(r.boards[board], "heartbeat").code;
  Print("process_crash", rec);
}

}  // namespace
}  // namespace wafer::testing

// Health that acts: each board's rules (health_rules.h) evaluated on its readings, and an
// incident when one FAILs. An incident drains the board (reason: health incident; evacuate or
// graceful per health.drain_mode), resets it after recovery_backoff_ms, judges the reset once
// the board is ready again (a FAIL then doubles the wait before the next reset), quarantines the
// board after max_recoveries failed resets, and closes once no rule has failed for
// return_after_s: the board returns to service by itself. Only the health reason of the drain
// is ever lifted here, never an operator's. "Passed for return_after_s": readings of the ready
// board that pass, the newest at least return_after_s after the last FAIL, the last reading of
// the board not ready, and the reset that brought it back. Plain logic: the daemon feeds it and
// carries out its actions (HealthActions); time from the injected Clock.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/status.h"
#include "host/config/health_config.h"
#include "host/health/health_rules.h"
#include "telemetry/health_metrics.h"

namespace wafer::host {

// What the monitor does to a board.
class HealthActions {
 public:
  virtual ~HealthActions() = default;
  // Adds or lifts the health-incident reason of the board's drain.
  virtual void Drain(uint32_t board, bool evacuate) = 0;
  virtual void Undrain(uint32_t board) = 0;
  // Resets the board as `waferctl reset` does (its models come back when it is ready).
  virtual void Reset(uint32_t board) = 0;
  // The board's open incident changed (opened, a reset sent or failed, quarantined, closed):
  // the daemon keeps it in its store, so that a restart resumes it (HealthMonitor::Restore).
  virtual void IncidentChanged(uint32_t board) = 0;
};

enum class IncidentState : uint8_t {
  kDrained,      // Drained; a reset is due at next_reset_ns.
  kRecovering,   // A reset was sent; judged once the board is ready again.
  kQuarantined,  // max_recoveries resets failed: drained until an operator clears it.
  kClosed,       // The board returned to service (or an operator cleared it).
};
const char* IncidentStateName(IncidentState state);  // "drained", "recovering", ...

struct Incident {
  uint64_t id = 0;  // Per daemon run, from 1.
  uint32_t board = 0;
  uint16_t code = 0;  // HealthCatalog: the FAIL that opened it.
  std::string message;
  IncidentState state = IncidentState::kDrained;
  int64_t opened_unix_ms = 0;
  int64_t closed_unix_ms = 0;  // 0 while open.
  uint32_t recoveries = 0;     // Resets sent.
  std::string last_action;     // What was done last, for people ("reset 2 of 3 sent", ...).
};

// One board as `waferctl health` shows it.
struct BoardHealthReport {
  uint32_t board = 0;
  // The worst rule; FAIL while an incident is open (the board is out of service by it).
  HealthLevel level = HealthLevel::kPass;
  std::array<RuleResult, kHealthRules> rules;
  bool evaluated = false;                  // False until the board's first readings.
  std::optional<Incident> open;            // The incident under way.
  std::vector<Incident> closed;            // The latest closed ones, newest first.
};

// Not thread-safe; owned by the step loop's thread.
class HealthMonitor {
 public:
  // How long a reset may take to bring the board back before it counts as a failed recovery.
  static constexpr int64_t kRecoveryTimeoutNs = 120'000'000'000;
  // Closed incidents kept per board.
  static constexpr size_t kClosedKept = 8;

  // REQUIRES: `config`, `clock`, `actions` and `metrics` outlive the monitor.
  HealthMonitor(const HealthConfig& config, const Clock& clock, size_t boards,
                HealthActions& actions, telemetry::HealthMetrics& metrics);

  // The board's latest readings (the daemon sends them about once a second while it is online).
  void OnSample(uint32_t board, const HealthSample& sample);
  // The board reached the ready state (after a boot or a reset).
  void OnBoardReady(uint32_t board);
  // Time passes: due resets are sent, recoveries time out. Call every loop turn.
  void Tick();
  // After a restart: the board's incident as the store kept it. The board is drained again; a
  // quarantine stays; any other state waits recovery_backoff_ms for its next reset, counting the
  // resets already sent. Ids of new incidents continue after it.
  void Restore(const Incident& incident);
  // An operator ends the board's incident (quarantined or not) and lifts its health drain; the
  // rules start a fresh window (errors before the clear do not open a new incident).
  //
  // Returns:
  //   OK               - what was done, for the operator ("board 0: incident 3 cleared, health
  //                      drain lifted").
  //   NOT_FOUND        - the board has no open incident.
  //   INVALID_ARGUMENT - an unknown board.
  HostResult<std::string> Clear(uint32_t board);

  // A diagnostics run ended on the board (`outcome`: PASS, WARN, FAIL), having retired
  // `pes_retired` PEs: counted for the operator's dashboards. The rules see the retired PEs in
  // the board's next readings (spares).
  void OnDiagnostics(uint32_t board, uint32_t level, const std::string& outcome,
                     uint64_t pes_retired);

  BoardHealthReport Report(uint32_t board) const;
  size_t boards() const { return boards_.size(); }

 private:
  struct BoardState {
    std::unique_ptr<BoardHealthRules> rules;
    std::array<RuleResult, kHealthRules> last;
    bool evaluated = false;
    std::optional<Incident> open;
    int64_t last_fail_ns = 0;    // The newest sample with a FAIL (open incidents).
    // The newest sample of the board ready with no FAIL, and the newest of it not ready. A
    // board returns to service on passing readings of it ready, never on silence: one that
    // stops reporting (offline, hung, halted, being reset) fails nothing and passes nothing.
    int64_t last_pass_ns = 0;
    int64_t last_unready_ns = 0;
    int64_t next_reset_ns = 0;   // kDrained: when the next reset is due.
    int64_t reset_sent_ns = 0;   // kRecovering.
    bool ready_since_reset = false;
    int64_t ready_ns = 0;        // kRecovering: when the board came back ready.
    std::deque<Incident> closed;  // Newest first.
  };

  void Open(uint32_t board, BoardState& b, const RuleResult& fail, int64_t now);
  void RecoveryFailed(uint32_t board, BoardState& b, int64_t now, const std::string& why);
  void Close(uint32_t board, BoardState& b, const std::string& why);
  // Sets the board's level, open-incident and quarantine series.
  void ExportIncident(uint32_t board, const BoardState& b);
  // The worst rule, and FAIL while an incident is open (the board is out of service).
  static HealthLevel LevelOf(const BoardState& b);
  int64_t Backoff(uint32_t recoveries) const;

  const HealthConfig& config_;
  const Clock& clock_;
  HealthActions& actions_;
  telemetry::HealthMetrics& metrics_;
  std::vector<BoardState> boards_;
  uint64_t next_incident_ = 1;
};

}  // namespace wafer::host

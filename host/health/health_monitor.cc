#include "host/health/health_monitor.h"

#include <algorithm>

#include "common/log/log.h"

namespace wafer::host {

const char* IncidentStateName(IncidentState state) {
  switch (state) {
    case IncidentState::kDrained: return "drained";
    case IncidentState::kRecovering: return "recovering";
    case IncidentState::kQuarantined: return "quarantined";
    case IncidentState::kClosed: return "closed";
  }
  return "?";
}

HealthMonitor::HealthMonitor(const HealthConfig& config, const Clock& clock, size_t boards,
                             HealthActions& actions, telemetry::HealthMetrics& metrics)
    : config_(config), clock_(clock), actions_(actions), metrics_(metrics), boards_(boards) {
  for (uint32_t i = 0; i < boards_.size(); ++i) {
    BoardState& b = boards_[i];
    b.rules = std::make_unique<BoardHealthRules>(config_);
    for (size_t r = 0; r < kHealthRules; ++r) {
      b.last[r].rule = static_cast<HealthRule>(r);
      b.last[r].message = "no readings yet";
    }
    // Every series from the start, so that alerts and panels read PASS rather than nothing.
    for (size_t r = 0; r < kHealthRules; ++r) {
      metrics_.Rule(i, HealthRuleName(static_cast<HealthRule>(r))).Set(0);
    }
    ExportIncident(i, b);
    for (const char* outcome : {"attempted", "succeeded", "failed"}) metrics_.Recoveries(i, outcome);
  }
  for (const HealthCode& code : HealthCatalog()) {
    if (code.level == HealthLevel::kFail) metrics_.Incidents(code.name);  // At 0.
  }
}

int64_t HealthMonitor::Backoff(uint32_t recoveries) const {
  const int64_t base = int64_t{config_.recovery_backoff_ms} * 1'000'000;
  return base << std::min<uint32_t>(recoveries, 16);
}

HealthLevel HealthMonitor::LevelOf(const BoardState& b) {
  HealthLevel worst = b.open ? HealthLevel::kFail : HealthLevel::kPass;
  for (const RuleResult& r : b.last) worst = std::max(worst, r.level);
  return worst;
}

void HealthMonitor::ExportIncident(uint32_t board, const BoardState& b) {
  metrics_.Board(board).Set(static_cast<double>(LevelOf(b)));
  metrics_.IncidentsOpen(board).Set(b.open ? 1 : 0);
  metrics_.Quarantined(board).Set(b.open && b.open->state == IncidentState::kQuarantined ? 1 : 0);
}

void HealthMonitor::OnSample(uint32_t board, const HealthSample& sample) {
  if (board >= boards_.size()) return;
  BoardState& b = boards_[board];
  b.last = b.rules->Evaluate(sample);
  b.evaluated = true;
  const RuleResult* first_fail = nullptr;
  for (const RuleResult& r : b.last) {
    metrics_.Rule(board, HealthRuleName(r.rule)).Set(static_cast<double>(r.level));
    if (r.level == HealthLevel::kFail && first_fail == nullptr) first_fail = &r;
  }
  metrics_.Board(board).Set(static_cast<double>(LevelOf(b)));
  const int64_t now = clock_.NowNanos();
  if (first_fail == nullptr) {
    if (sample.ready) {
      b.last_pass_ns = now;
    } else {
      b.last_unready_ns = now;
    }
    return;
  }
  if (!b.open) {
    if (config_.enabled) Open(board, b, *first_fail, now);
    return;
  }
  if (b.open->state == IncidentState::kRecovering) {
    // Readings from before the reset took effect say nothing of it; a FAIL once the reset has
    // brought the board back says it did not cure it.
    if (!b.ready_since_reset) return;
    b.last_fail_ns = now;
    RecoveryFailed(board, b, now,
                   std::string(HealthRuleName(first_fail->rule)) + " still fails: " +
                       first_fail->message);
    return;
  }
  b.last_fail_ns = now;
}

void HealthMonitor::Open(uint32_t board, BoardState& b, const RuleResult& fail, int64_t now) {
  const HealthCode* code = FindHealthCode(fail.code);
  Incident incident;
  incident.id = next_incident_++;
  incident.board = board;
  incident.code = fail.code;
  incident.message = std::string(HealthRuleName(fail.rule)) + ": " + fail.message;
  incident.state = IncidentState::kDrained;
  incident.opened_unix_ms = clock_.UnixMillis();
  incident.last_action = "drained (" + config_.drain_mode + "); reset due in " +
                         std::to_string(config_.recovery_backoff_ms) + " ms";
  b.open = std::move(incident);
  b.last_fail_ns = now;
  b.next_reset_ns = now + Backoff(0);
  actions_.Drain(board, config_.drain_mode == "evacuate");
  metrics_.Incidents(code != nullptr ? code->name : "UNKNOWN").Increment();
  ExportIncident(board, b);
  actions_.IncidentChanged(board);
  log::Error("health", "board {} health incident {} opened: {} {}: {}; {}", board, b.open->id,
             fail.code, code != nullptr ? code->name : "?", b.open->message, b.open->last_action);
}

void HealthMonitor::RecoveryFailed(uint32_t board, BoardState& b, int64_t now,
                                   const std::string& why) {
  Incident& incident = *b.open;
  metrics_.Recoveries(board, "failed").Increment();
  if (incident.recoveries >= config_.max_recoveries) {
    incident.state = IncidentState::kQuarantined;
    incident.last_action = "quarantined after " + std::to_string(incident.recoveries) +
                           " failed resets (" + why + "); clear with waferctl health --clear " +
                           std::to_string(board);
  } else {
    incident.state = IncidentState::kDrained;
    b.next_reset_ns = now + Backoff(incident.recoveries);
    incident.last_action = "reset " + std::to_string(incident.recoveries) + " failed (" + why +
                           "); next reset in " +
                           std::to_string(Backoff(incident.recoveries) / 1'000'000) + " ms";
  }
  ExportIncident(board, b);
  actions_.IncidentChanged(board);
  log::Log(incident.state == IncidentState::kQuarantined ? log::Level::kError : log::Level::kWarn,
           "health", "board {} health incident {}: {}", board, incident.id, incident.last_action);
}

void HealthMonitor::Close(uint32_t board, BoardState& b, const std::string& why) {
  Incident incident = std::move(*b.open);
  b.open.reset();
  incident.state = IncidentState::kClosed;
  incident.closed_unix_ms = clock_.UnixMillis();
  incident.last_action = why;
  actions_.Undrain(board);
  ExportIncident(board, b);
  actions_.IncidentChanged(board);
  log::Info("health", "board {} health incident {} closed: {}", board, incident.id, why);
  b.closed.push_front(std::move(incident));
  if (b.closed.size() > kClosedKept) b.closed.pop_back();
}

void HealthMonitor::OnBoardReady(uint32_t board) {
  if (board >= boards_.size()) return;
  BoardState& b = boards_[board];
  if (b.open && b.open->state == IncidentState::kRecovering && !b.ready_since_reset) {
    b.ready_since_reset = true;
    b.ready_ns = clock_.NowNanos();
  }
}

void HealthMonitor::Tick() {
  const int64_t now = clock_.NowNanos();
  const int64_t return_after = int64_t{config_.return_after_s} * 1'000'000'000;
  for (uint32_t board = 0; board < boards_.size(); ++board) {
    BoardState& b = boards_[board];
    if (!b.open) continue;
    Incident& incident = *b.open;
    switch (incident.state) {
      case IncidentState::kDrained:
        if (b.last_pass_ns - std::max(b.last_fail_ns, b.last_unready_ns) >= return_after) {
          // It passed before its reset came due (a long backoff): nothing left to cure.
          Close(board, b, "returned to service: no rule failed for " +
                              std::to_string(config_.return_after_s) + " s");
          break;
        }
        if (now < b.next_reset_ns) break;
        if (incident.recoveries >= config_.max_recoveries) {
          // max_recoveries 0: no reset at all.
          RecoveryFailed(board, b, now, "no reset allowed");
          break;
        }
        ++incident.recoveries;
        incident.state = IncidentState::kRecovering;
        incident.last_action = "reset " + std::to_string(incident.recoveries) + " of " +
                               std::to_string(config_.max_recoveries) + " sent";
        b.reset_sent_ns = now;
        b.ready_since_reset = false;
        // The reset is the remedy: the rules judge what the board does after it, not the
        // errors that opened the incident.
        b.rules = std::make_unique<BoardHealthRules>(config_);
        metrics_.Recoveries(board, "attempted").Increment();
        actions_.IncidentChanged(board);
        log::Info("health", "board {} health incident {}: {}", board, incident.id,
                  incident.last_action);
        actions_.Reset(board);
        break;
      case IncidentState::kRecovering:
        if (!b.ready_since_reset) {
          if (now - b.reset_sent_ns >= kRecoveryTimeoutNs) {
            RecoveryFailed(board, b, now, "the board did not come back ready");
          }
          break;
        }
        if (b.last_pass_ns - std::max({b.ready_ns, b.last_fail_ns, b.last_unready_ns}) >=
            return_after) {
          metrics_.Recoveries(board, "succeeded").Increment();
          Close(board, b,
                "returned to service: no rule failed for " +
                    std::to_string(config_.return_after_s) + " s after reset " +
                    std::to_string(incident.recoveries));
        }
        break;
      case IncidentState::kQuarantined:
      case IncidentState::kClosed:
        break;
    }
  }
}

void HealthMonitor::Restore(const Incident& incident) {
  if (incident.board >= boards_.size()) return;
  BoardState& b = boards_[incident.board];
  const int64_t now = clock_.NowNanos();
  b.open = incident;
  b.open->closed_unix_ms = 0;
  if (incident.state != IncidentState::kQuarantined) {
    b.open->state = IncidentState::kDrained;
    b.next_reset_ns = now + Backoff(0);
    b.open->last_action = "restored after a daemon restart; reset due in " +
                          std::to_string(config_.recovery_backoff_ms) + " ms";
  }
  b.last_fail_ns = now;  // Judged afresh: it must pass return_after_s after its next reset.
  next_incident_ = std::max(next_incident_, incident.id + 1);
  actions_.Drain(incident.board, config_.drain_mode == "evacuate");
  ExportIncident(incident.board, b);
  log::Warn("health", "board {} health incident {} restored: {}", incident.board, incident.id,
            b.open->last_action);
}

HostResult<std::string> HealthMonitor::Clear(uint32_t board) {
  if (board >= boards_.size()) {
    return Error{StatusCode::kInvalidArgument,
                 "board " + std::to_string(board) + " is not configured"};
  }
  BoardState& b = boards_[board];
  if (!b.open) {
    return Error{StatusCode::kNotFound,
                 "board " + std::to_string(board) + " has no open health incident"};
  }
  const uint64_t id = b.open->id;
  // The operator vouches for the board: its rules judge what it does from now on, not the
  // errors still in their window (which would open a new incident at the next reading).
  b.rules = std::make_unique<BoardHealthRules>(config_);
  Close(board, b, "cleared by an operator");
  return "board " + std::to_string(board) + ": incident " + std::to_string(id) +
         " cleared, health drain lifted";
}

BoardHealthReport HealthMonitor::Report(uint32_t board) const {
  BoardHealthReport r;
  r.board = board;
  if (board >= boards_.size()) return r;
  const BoardState& b = boards_[board];
  r.rules = b.last;
  r.evaluated = b.evaluated;
  r.level = LevelOf(b);
  r.open = b.open;
  r.closed.assign(b.closed.begin(), b.closed.end());
  return r;
}

void HealthMonitor::OnDiagnostics(uint32_t board, uint32_t level, const std::string& outcome,
                                  uint64_t pes_retired) {
  metrics_.Diagnostics(board, level, outcome).Increment();
  if (pes_retired > 0) metrics_.DiagnosticsRetired(board).Increment(static_cast<double>(pes_retired));
}

}  // namespace wafer::host

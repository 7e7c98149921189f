#include "host/daemon/board_health_actions.h"

#include "common/log/log.h"

namespace wafer::host {

StoredBoardState StoredStateOf(const Board& board, const HealthMonitor& health) {
  StoredBoardState s;
  s.board = board.index;
  if (board.drain.Has(DrainReason::kOperator)) {
    s.operator_drain = board.drain.ModeOf(DrainReason::kOperator) == DrainMode::kEvacuate ? 2 : 1;
  }
  const BoardHealthReport report = health.Report(board.index);
  if (report.open) {
    const Incident& i = *report.open;
    s.incident_id = i.id;
    s.incident_code = i.code;
    s.incident_message = i.message;
    s.incident_state = IncidentStateName(i.state);
    s.incident_opened_unix_ms = i.opened_unix_ms;
    s.incident_recoveries = i.recoveries;
    s.incident_last_action = i.last_action;
  }
  return s;
}

void RestoreBoardState(const StoredBoardState& stored, BoardManager& boards,
                       HealthMonitor& health) {
  if (!boards.has(stored.board)) {
    log::Warn("health", "stored state of board {}, which this config lacks; dropped",
              stored.board);
    return;
  }
  if (stored.operator_drain != 0) {
    boards.Drain(stored.board, DrainReason::kOperator,
                 stored.operator_drain == 2 ? DrainMode::kEvacuate : DrainMode::kGraceful);
  }
  if (stored.incident_id != 0) {
    Incident i;
    i.id = stored.incident_id;
    i.board = stored.board;
    i.code = stored.incident_code;
    i.message = stored.incident_message;
    i.state = stored.incident_state == "quarantined" ? IncidentState::kQuarantined
                                                     : IncidentState::kDrained;
    i.opened_unix_ms = stored.incident_opened_unix_ms;
    i.recoveries = stored.incident_recoveries;
    i.last_action = stored.incident_last_action;
    health.Restore(i);
  }
}

}  // namespace wafer::host

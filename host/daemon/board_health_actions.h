// What a health incident does to a board (host/health/health_monitor.h), carried out on the
// daemon's parts: the drain's health reason through the board manager, a reset as `waferctl
// reset` does it; and the readings the rules judge, gathered from the board's record.
#pragma once

#include <algorithm>

#include "host/boards/board_manager.h"
#include "host/health/health_monitor.h"
#include "host/jobs/job_store.h"
#include "host/serving/model_manager.h"

namespace wafer::host {

// What of `board` a restart must find again: its operator drain and `health`'s open incident.
StoredBoardState StoredStateOf(const Board& board, const HealthMonitor& health);
// The stored state made live again on a restarted daemon: the operator's drain, the incident.
void RestoreBoardState(const StoredBoardState& stored, BoardManager& boards,
                       HealthMonitor& health);

class BoardHealthActions final : public HealthActions {
 public:
  // REQUIRES: all outlive this (`models` and `health` need only be constructed before the first
  // action).
  BoardHealthActions(BoardManager& boards, ModelManager& models, JobStore& store,
                     const HealthMonitor& health)
      : boards_(boards), models_(models), store_(store), health_(health) {}

  void Drain(uint32_t board, bool evacuate) override {
    boards_.Drain(board, DrainReason::kHealthIncident,
                  evacuate ? DrainMode::kEvacuate : DrainMode::kGraceful);
  }
  void Undrain(uint32_t board) override { boards_.Undrain(board, DrainReason::kHealthIncident); }
  void Reset(uint32_t board) override { models_.ResetBoard(board, "", 0); }
  void IncidentChanged(uint32_t board) override {
    // Written now, durable at the loop's next commit.
    store_.BoardStateChanged(StoredStateOf(boards_.at(board), health_)).IgnoreError();
  }

 private:
  BoardManager& boards_;
  ModelManager& models_;
  JobStore& store_;
  const HealthMonitor& health_;
};

// `board`'s latest readings and counters as the health rules read them, at `now_ns`.
inline HealthSample HealthSampleOf(const Board& board, int64_t now_ns) {
  const BoardTelemetry& t = board.telemetry;
  HealthSample s;
  s.at_ns = now_ns;
  s.has_telemetry = !t.region_temp_c.empty();
  for (float c : t.region_temp_c) s.max_temperature_c = std::max(s.max_temperature_c, c);
  s.throttled = t.throttled;
  s.thermal_trip = t.thermal_trip;
  s.ecc_corrected = t.ecc_correctable;
  s.ecc_uncorrectable = t.ecc_uncorrectable;
  s.link_crc_errors = t.link_crc_errors;
  s.spare_pes = board.identity.spare_pes;
  s.runtime_failed_pes = t.runtime_failed_pes;
  s.heartbeat_misses = board.heartbeat_misses;
  s.steps = board.steps + board.step_errors;
  s.step_errors = board.step_errors;
  s.firmware_rollbacks = board.firmware_rollbacks;
  s.ready = board.runs_steps();
  return s;
}

}  // namespace wafer::host

// The boards waferd drives: each one's worker thread and channel, its state as last reported,
// its drain (a set of reasons), and the health-rule hook that runs on every board update. The
// step loop reads boards here and changes them only through this class.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/clock.h"
#include "common/error.h"
#include "common/net/socket.h"
#include "host/boards/board_drain.h"
#include "host/boards/board_link_factory.h"
#include "host/boards/board_worker.h"
#include "host/boards/worker_messages.h"
#include "host/config/daemon_config.h"
#include "host/wire/messages.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

class BoardManager;

// One board as the step loop knows it.
struct Board {
  uint32_t index = 0;
  BoardConfig config;
  BoardState state = BoardState::kOffline;
  std::string detail;
  BoardIdentity identity;
  BoardTelemetry telemetry;
  BoardDrain drain;
  uint32_t steps_in_flight = 0;  // Sent to the worker, StepDone not yet back (StepSent).
  bool resetting = false;        // A ResetWork is under way: no steps until it completes.
  bool diagnosing = false;       // A DiagWork is under way (the admin front end's).
  bool heard = false;    // A BoardUpdate arrived: `state` is the worker's, not the default.
  bool preparing = false;  // A load spanning this board is being planned: its rows are unknown.
  size_t next_model = 0;   // Round-robin position over this board's models.
  uint64_t steps = 0;
  // What the health rules count (host/health/): Steps that failed on this board, firmware
  // heartbeats it missed, and firmware rollbacks its log showed. Never go down.
  uint64_t step_errors = 0;
  uint64_t heartbeat_misses = 0;
  uint64_t firmware_rollbacks = 0;
  // Tokens sampled on this board (the last board of a pipeline) since the daemon started.
  uint64_t tokens_generated = 0;
  // Wall time during which a Step was in flight here: finished busy stretches, and the start
  // of the current one (waferctl top's utilisation; BusyNanos()).
  int64_t busy_ns = 0;
  int64_t busy_since_ns = 0;

  // A Step went to the worker / came back (or never went), at `now_ns` of the daemon's clock.
  void StepSent(int64_t now_ns) {
    if (steps_in_flight++ == 0) busy_since_ns = now_ns;
  }
  void StepReturned(int64_t now_ns) {
    if (steps_in_flight == 0) return;
    if (--steps_in_flight == 0) busy_ns += now_ns - busy_since_ns;
  }
  // Busy time up to `now_ns`, the stretch under way included.
  int64_t BusyNanos(int64_t now_ns) const {
    return busy_ns + (steps_in_flight > 0 ? now_ns - busy_since_ns : 0);
  }

  // Ready, not resetting and not drained: new work may be placed here.
  bool accepts_work() const {
    return state == BoardState::kReady && !resetting && !drain.drained();
  }
  // Ready and not resetting: steps of work already placed here may run.
  bool runs_steps() const { return state == BoardState::kReady && !resetting; }
};

// Health rules look at a board after each update and may drain it (or lift their own drain).
// Runs on the step loop's thread; must not block.
using BoardHealthHook = std::function<void(const Board& board, BoardManager& boards)>;

// Not thread-safe: owned by the step loop's thread (the workers run on their own threads and
// talk to it only through their channels).
class BoardManager {
 public:
  // REQUIRES: `context`, `clock` and `metrics` outlive the manager.
  BoardManager(zmq::context_t& context, const Clock& clock, std::vector<BoardConfig> configs,
               BoardLinkFactory link_factory, telemetry::DaemonMetrics& metrics);
  // Stops the workers and frees whatever is still queued in their channels.
  ~BoardManager();

  // Opens each board's channel and starts its worker.
  // Returns:
  //   OK          - every worker runs.
  //   UNAVAILABLE - a channel cannot be opened (the message names its endpoint and why).
  HostStatus Start();

  size_t size() const { return boards_.size(); }
  Board& at(uint32_t index) { return *boards_[index].board; }
  const Board& at(uint32_t index) const { return *boards_[index].board; }
  bool has(uint32_t index) const { return index < boards_.size(); }

  // Hands `work` to board `index`'s worker. False when the worker is gone (shutdown); the work
  // is destroyed then.
  bool Send(uint32_t index, std::unique_ptr<WorkerRequest> work);
  // Calls `on_event` for every event the workers have sent, board by board.
  void Pump(const std::function<void(Board&, WorkerEvent&)>& on_event);
  // Appends one poll item per worker channel.
  void AddPollItems(std::vector<zmq::pollitem_t>* items);

  // Records a worker's report (state, identity, readings, metrics), then runs the health hook.
  // Returns the state the board had before.
  BoardState ApplyUpdate(Board& board, const BoardUpdate& update);

  // Drains board `index` for `reason` in `mode`, or lifts `reason` only. On a change of the
  // board's drain as a whole, the drain listener runs. False for an unknown board.
  bool Drain(uint32_t index, DrainReason reason, DrainMode mode);
  bool Undrain(uint32_t index, DrainReason reason);

  void set_health_hook(BoardHealthHook hook) { health_hook_ = std::move(hook); }
  // Called after the drain of a board changed (the step loop evacuates or resumes it).
  void set_drain_listener(std::function<void(Board&)> listener) {
    drain_listener_ = std::move(listener);
  }
  // Called after every Drain or Undrain, changed or not, with the board's reasons as they are
  // now (the daemon keeps them in its store).
  void set_drain_recorder(std::function<void(const Board&)> recorder) {
    drain_recorder_ = std::move(recorder);
  }

 private:
  // Sets wafer_board_drained{board, reason} from `board`'s drain.
  void ExportDrain(const Board& board);

  struct Slot {
    std::unique_ptr<Board> board;
    std::unique_ptr<BoardWorker> worker;
    std::unique_ptr<net::Socket> channel;  // The step loop's end of the worker channel.
  };

  zmq::context_t& context_;
  const Clock& clock_;
  BoardLinkFactory link_factory_;
  telemetry::DaemonMetrics& metrics_;
  std::vector<Slot> boards_;
  BoardHealthHook health_hook_;
  std::function<void(Board&)> drain_listener_;
  std::function<void(const Board&)> drain_recorder_;
};

}  // namespace wafer::host

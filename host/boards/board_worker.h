// One thread per board: it owns the board's BoardLink, boots the board, runs the steps the step
// loop sends, stages and unloads models with progress, and reports the board's state and
// telemetry. Blocking board calls live here so the step loop never waits on a board.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "common/clock.h"
#include "host/boards/board_link_factory.h"
#include "host/config/daemon_config.h"

namespace wafer::host {

// The step loop's end of the channel must be bound at `ChannelEndpoint(index)` before Start().
// Thread-compatible: Start/Stop from the owning thread only.
class BoardWorker {
 public:
  // `link_factory` makes the worker's BoardLink (on the worker thread).
  // REQUIRES: `context` and `clock` outlive the worker.
  BoardWorker(zmq::context_t& context, const Clock& clock, uint32_t index, BoardConfig config,
              BoardLinkFactory link_factory);
  ~BoardWorker();

  static std::string ChannelEndpoint(uint32_t index);

  void Start();
  // Asks the thread to finish its current request and exit, then joins it.
  void Stop();

 private:
  void Run();

  zmq::context_t& context_;
  const Clock& clock_;
  const uint32_t index_;
  const BoardConfig config_;
  const BoardLinkFactory link_factory_;
  zmq::socket_t channel_;  // The worker's end; used only by the worker thread after Start().
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace wafer::host

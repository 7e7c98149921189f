// One thread per board: it owns the board's BoardLink, boots the board, runs the steps the step
// loop sends, stages and unloads models with progress, and reports the board's state and
// telemetry. Blocking board calls live here so the step loop never waits on a board.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/net/socket.h"
#include "host/boards/board_link_factory.h"
#include "host/config/daemon_config.h"

namespace wafer::host {

// The worker talks to the step loop over one end of an owned channel (common/net), handed over
// at construction; the step loop keeps the other end. Thread-compatible: Start/Stop from the
// owning thread only.
class BoardWorker {
 public:
  // `link_factory` makes the worker's BoardLink (on the worker thread).
  // REQUIRES: `clock` outlives the worker; `channel` is connected to the step loop's end.
  BoardWorker(std::unique_ptr<net::Socket> channel, const Clock& clock, uint32_t index,
              BoardConfig config, BoardLinkFactory link_factory);
  ~BoardWorker();

  static std::string ChannelEndpoint(uint32_t index);

  void Start();
  // Asks the thread to finish its current request and exit, then joins it.
  void Stop();

 private:
  void Run();

  const Clock& clock_;
  const uint32_t index_;
  const BoardConfig config_;
  const BoardLinkFactory link_factory_;
  // The worker's end; used only by the worker thread after Start() (thread start is the
  // barrier a socket needs to change threads).
  std::unique_ptr<net::Socket> channel_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace wafer::host

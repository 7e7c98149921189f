// Opens, verifies and plans checkpoints on a thread of its own, so that neither the step loop
// nor any board's worker waits on a disk read or a checksum: a board keeps running steps while
// a model for it is being prepared. One request at a time, in the order sent.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/net/socket.h"
#include "host/loader/prepare_messages.h"

namespace wafer::host {

// The loader talks to the step loop over one end of an owned channel (common/net): it receives
// PrepareWork and sends one PrepareDone per request. Thread-compatible: Start/Stop from the
// owning thread only.
class Loader {
 public:
  // REQUIRES: `channel` is connected to the step loop's end.
  explicit Loader(std::unique_ptr<net::Socket> channel);
  ~Loader();

  static std::string ChannelEndpoint();

  void Start();
  // Asks the thread to exit after the request it is on, then joins it.
  void Stop();

 private:
  void Run();

  std::unique_ptr<net::Socket> channel_;  // Used only by the loader thread after Start().
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace wafer::host

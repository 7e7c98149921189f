// Opens, verifies and plans checkpoints on a thread of its own, so that neither the step loop
// nor any board's worker waits on a disk read or a checksum: a board keeps running steps while
// a model for it is being prepared. One request at a time, in the order sent.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "host/loader/prepare_messages.h"

namespace wafer::host {

// The step loop binds its end of the channel at ChannelEndpoint() before Start(), sends
// PrepareWork and receives PrepareDone (SendOwned/ReceiveOwned), one answer per request.
// Thread-compatible: Start/Stop from the owning thread only.
class Loader {
 public:
  // REQUIRES: `context` outlives the loader.
  explicit Loader(zmq::context_t& context);
  ~Loader();

  static std::string ChannelEndpoint();

  void Start();
  // Asks the thread to exit after the request it is on, then joins it.
  void Stop();

 private:
  void Run();

  zmq::context_t& context_;
  zmq::socket_t channel_;  // The loader's end; used only by its thread after Start().
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace wafer::host

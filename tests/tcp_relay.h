// A loopback TCP relay that a test puts in front of a server's port to cut connections the way a
// network fault does.
#pragma once

#include <atomic>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wafer::testing {

// Listens on `listeners` ephemeral ports of 127.0.0.1 (one per client thread of a test, say) and
// relays every connection accepted on one of them to 127.0.0.1:`upstream_port`, byte for byte in
// both directions. Drop(i) cuts the connections of listener i: both ends are closed and the bytes
// in flight are lost, so a ZeroMQ client reconnects by itself and the server sees a new peer.
// When the upstream port refuses, the accepted connection is closed at once (the client sees a
// refused connection and retries). Every fd is close-on-exec, so processes the test starts never
// hold a relayed connection open.
//
// Thread-safe. The relay's own thread owns the connections; the destructor stops it and closes
// everything.
class TcpRelay {
 public:
  TcpRelay(int upstream_port, int listeners);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  // False when a listening port or the relay's wake-up pipe could not be made.
  bool ok() const { return ok_; }
  // The port of listener `listener` (0 <= listener < listeners). REQUIRES: ok().
  int port(int listener) const { return ports_[listener]; }

  // Closes every connection accepted on `listener`; returns how many, once they are closed
  // (0 when the relay is not ok()).
  int Drop(int listener);

 private:
  // One relayed connection.
  struct Pipe {
    int listener = 0;
    int down = -1;  // The client's side.
    int up = -1;    // The server's side.
    std::string to_up, to_down;
    bool dead = false;
  };
  struct Request {
    int listener;
    std::promise<int>* done;
  };

  void Wake();
  void Accept(int listener);
  void Loop();

  const int upstream_port_;
  int wake_[2] = {-1, -1};
  std::vector<int> listeners_;
  std::vector<int> ports_;
  std::vector<Pipe> pipes_;  // Owned by the relay's thread.
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Request> requests_;  // Guarded by mu_.
  std::thread thread_;
};

}  // namespace wafer::testing

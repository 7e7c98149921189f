// Watches a socket for connections whose handshake failed: a plaintext client on a CURVE
// socket, a client of another mechanism, a malformed greeting. libzmq drops them silently and
// reports them only through a monitor socket; this reads that socket. Refusals by the ZAP
// handler (an unknown key) are not among them: the handler itself reports those.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "common/net/socket.h"
#include "common/error.h"

namespace wafer::net {

// Not thread-safe: it belongs to the thread that owns the watched socket.
class HandshakeMonitor {
 public:
  // Starts monitoring `watched` over an inproc:// pair in `context`.
  // Returns:
  //   OK          - monitoring.
  //   UNAVAILABLE - libzmq refuses (the message says why); any other code is the event
  //                 socket's (Socket::Connect).
  // REQUIRES: `context` outlives the monitor; the monitor is destroyed before `watched`.
  static HostResult<std::unique_ptr<HandshakeMonitor>> Start(zmq::context_t& context,
                                                             Socket& watched);
  ~HandshakeMonitor();  // Stops the monitoring.

  // For the caller's poll: readable when events wait.
  void* handle() { return events_->handle(); }
  // Reads every waiting event; `on_failure` gets a description of each failed handshake
  // ("plaintext or another mechanism on tcp://127.0.0.1:7421", ...).
  void Drain(const std::function<void(const std::string&)>& on_failure);

 private:
  HandshakeMonitor(Socket& watched, std::unique_ptr<Socket> events);

  Socket& watched_;
  std::unique_ptr<Socket> events_;
};

}  // namespace wafer::net

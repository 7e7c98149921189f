// net::Socket: the one type through which Waferd's host side makes, configures, sends on and
// receives from a ZeroMQ socket. A thin adapter over cppzmq: every zmq::error_t is caught here and
// comes back as a Status, a Result or a SendOutcome; no ZeroMQ exception leaves common/net.
#pragma once

#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include <zmq.hpp>

#include "common/net/message.h"
#include "common/net/socket_options.h"
#include "common/error.h"
#include "common/result.h"

namespace wafer::net {

// What became of a non-blocking send. Nothing is queued unless the outcome is kSent.
enum class SendOutcome {
  kSent,         // The whole message is queued for the peer.
  kPeerBacklog,  // EAGAIN: the peer's queue is at its high-water mark, or (DEALER, PAIR, REQ)
                 // no peer is connected at all. Retry later or drop.
  kPeerGone,     // EHOSTUNREACH (ROUTER with router_mandatory): no connected peer has this
                 // routing id; it disconnected or never existed.
  kError,        // Anything else: the context is shutting down, the socket's state forbids the
                 // send (a REQ awaiting its reply), or a caller error (no frames).
};

// A label for logs and metrics: "sent", "peer_backlog", "peer_gone" or "send_error".
const char* SendOutcomeName(SendOutcome outcome);

// Owns one zmq::socket_t, configured from SocketOptions.
//
// Not thread-safe: a socket belongs to one thread. It may move to another thread only across a
// full memory barrier (for example, made before std::thread starts and used only by that thread
// afterwards). The zmq::context_t it was made in must outlive it. Destruction closes the socket
// without waiting (linger 0 unless the options said otherwise).
class Socket {
 public:
  // Makes a socket of `type` in `context`, applies `options`, and binds it to `endpoint`
  // (inproc://, ipc:// or tcp://; "tcp://127.0.0.1:*" picks an ephemeral port, which
  // last_endpoint() then names).
  // Returns:
  //   OK               - bound; the caller owns the socket.
  //   INVALID_ARGUMENT - a malformed endpoint or an unknown transport, or an option out of range.
  //   UNAVAILABLE      - the endpoint could not be bound (in use, no such address or directory),
  //                      or the context is shutting down.
  //   RESOURCE_EXHAUSTED - the context holds its maximum number of sockets (EMFILE).
  //   INTERNAL         - libzmq refused an option.
  // A failure's message names the socket type, the endpoint and libzmq's reason.
  static HostResult<std::unique_ptr<Socket>> Bind(zmq::context_t& context, SocketType type,
                                                  const std::string& endpoint,
                                                  const SocketOptions& options);

  // As Bind, but connects. A connect succeeds before any peer is listening (libzmq connects in
  // the background and queues sends meanwhile), so UNAVAILABLE means only a shutting-down context
  // or an unusable local address.
  static HostResult<std::unique_ptr<Socket>> Connect(zmq::context_t& context, SocketType type,
                                                     const std::string& endpoint,
                                                     const SocketOptions& options);

  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  SocketType type() const { return type_; }

  // The endpoint bound (with a wildcard port resolved) or connected to.
  const std::string& last_endpoint() const { return last_endpoint_; }

  // The raw handle, only for building zmq::pollitem_t to wait on several sockets at once.
  // Sending or receiving through it bypasses this class's error handling: don't.
  void* handle() { return socket_.handle(); }

  // Sends one message of one frame, or of `frames` in order, without blocking. libzmq queues a
  // message whole or not at all, so a backlog is only ever reported before its first frame.
  SendOutcome Send(std::span<const std::byte> frame);
  SendOutcome Send(std::initializer_list<std::span<const std::byte>> frames);
  SendOutcome Send(std::span<const std::span<const std::byte>> frames);

  // Sends `frames` followed by one more frame, `attachment`, without blocking and without copying
  // the attachment: libzmq reads those bytes where they are (an inproc peer receives that very
  // memory; ipc and tcp hand it to the kernel from there) for as long as any part of libzmq holds
  // the message, possibly after this returns and on another thread, and then drops its copy of
  // `owner`. So `owner` must keep the bytes valid and unchanged until it is dropped. The outcomes
  // are Send's; on any but kSent `owner` is dropped before this returns.
  SendOutcome SendWithAttachment(std::span<const std::span<const std::byte>> frames,
                                 std::span<const std::byte> attachment,
                                 std::shared_ptr<const void> owner);

  // Receives one whole message (every frame), waiting up to `timeout_ms` for it to arrive;
  // 0 takes only what is already queued.
  // Returns:
  //   OK                - a message with at least one frame.
  //   DEADLINE_EXCEEDED - nothing arrived within the timeout.
  //   UNAVAILABLE       - the context is shutting down (ETERM), or the wait was interrupted by a
  //                       signal (EINTR): the caller decides whether to wait again.
  //   INVALID_ARGUMENT  - timeout_ms < 0.
  //   INTERNAL          - any other libzmq failure.
  Result<Message> Receive(int timeout_ms);

 private:
  Socket(zmq::socket_t socket, SocketType type, std::string last_endpoint);
  static HostResult<std::unique_ptr<Socket>> Open(zmq::context_t& context, SocketType type,
                                                  const std::string& endpoint,
                                                  const SocketOptions& options, bool bind);

  zmq::socket_t socket_;
  SocketType type_;
  std::string last_endpoint_;
  int receive_timeout_ms_ = -1;  // ZMQ_RCVTIMEO as last set (-1: libzmq's default, forever).
};

}  // namespace wafer::net

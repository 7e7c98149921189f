// What kind of ZeroMQ socket to make and how to configure it: the only knobs the rest of the tree
// turns. common/net applies them in one place (socket.cc), before the socket binds or connects.
#pragma once

#include <cstdint>
#include <string>

namespace wafer::net {

// The socket types Waferd uses. Debian's libzmq has no draft API (no SERVER/CLIENT).
enum class SocketType {
  kRouter,  // Job, admin and board-link servers: one routing id per peer.
  kDealer,  // Clients and the host end of a board link.
  kReq,     // Strict request/reply clients (tests and third-party schedulers).
  kPair,    // Thread-to-thread channels over inproc://.
};

// Returns "ROUTER", "DEALER", "REQ" or "PAIR".
const char* SocketTypeName(SocketType type);

struct SocketOptions {
  // Messages queued per peer before a send reports a backlog (ZMQ_SNDHWM) and before libzmq
  // stops reading from a peer (ZMQ_RCVHWM). 0 means no limit; negative is INVALID_ARGUMENT.
  int send_high_water_mark = 1000;
  int receive_high_water_mark = 1000;
  // Inbound messages larger than this make libzmq drop the sender's connection
  // (ZMQ_MAXMSGSIZE): nothing of them is delivered. Applies to tcp:// and ipc:// only (inproc://
  // has no decoder); never to sends. -1 means no limit.
  int64_t max_message_bytes = -1;
  // ROUTER only (ignored for other types): a send to an unknown peer or to a peer at its
  // high-water mark fails (kPeerGone, kPeerBacklog) instead of being dropped silently.
  bool router_mandatory = true;
  // How long closing waits for unsent messages (ZMQ_LINGER). 0, so that a context never hangs
  // at exit on a peer that went away.
  int linger_ms = 0;
  // CURVE (encryption and authentication), on tcp:// and ipc:// endpoints. Keys are Z85 text,
  // 40 characters, as net::GenerateCurveKeyPair and zmq_curve_keypair write them. A server
  // (ROUTER) sets `curve_secret_key` and `zap_domain`: every client is then authenticated by the
  // ZAP handler (net::ZapHandler) for that domain, which must be running before the socket
  // binds. A client (DEALER, REQ) sets `curve_server_key` (the server it trusts) and its own
  // pair. Empty: plaintext.
  std::string curve_secret_key;
  std::string curve_public_key;  // Client only.
  std::string curve_server_key;  // Client only.
  std::string zap_domain;        // Server only.
};

}  // namespace wafer::net

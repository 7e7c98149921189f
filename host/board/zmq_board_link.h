// The ZeroMQ BoardLink: board.fbs over a DEALER made by common/net, to a board's ROUTER
// (board_sim/board_runner.h serves one; so would a real board's bridge).
#pragma once

#include <memory>
#include <string>

#include <zmq.hpp>

#include "common/clock.h"
#include "common/error.h"
#include "host/board/board_link.h"

namespace wafer::host {

// Connects a DEALER to `endpoint` using `context` (which must be the board's context for
// inproc://). `timeout_ms` bounds every call: its deadline is timeout_ms after the send, read on
// `clock`; the link waits for the reply at most the time `clock` says is left, and gives up when
// a wait brings nothing or `clock` reads past the deadline (so a FakeClock moved past it ends the
// call at the next reply that is not the answer). On a timeout the link reconnects so a late reply
// to an abandoned command can never be taken for the answer to a new one.
// REQUIRES: `context` and `clock` outlive the link.
// Returns:
//   OK               - connected (libzmq connects in the background; the first call may time out
//                      if no board listens).
//   INVALID_ARGUMENT - timeout_ms <= 0.
//   UNAVAILABLE      - the socket could not be made or connected (the context is closing, or
//                      the endpoint is malformed).
// CURVE on the link (a wafer-sim process over ipc:// or tcp://): the board's public key and the
// host's own pair, Z85. All empty: plaintext.
struct BoardLinkKeys {
  std::string board_public_key;
  std::string public_key;
  std::string secret_key;
};

HostResult<std::unique_ptr<BoardLink>> ConnectBoardLink(zmq::context_t& context,
                                                        const std::string& endpoint,
                                                        int timeout_ms, const Clock& clock,
                                                        const BoardLinkKeys& keys = {});

}  // namespace wafer::host

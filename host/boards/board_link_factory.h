// How a board worker gets its BoardLink: injected, so that a real board driver is another
// factory, not an edit of the worker. Only main() functions and tests choose one.
#pragma once

#include <functional>
#include <memory>

#include "common/clock.h"
#include "common/error.h"
#include "host/board/board_link.h"
#include "host/config/daemon_config.h"

namespace zmq {
class context_t;
}

namespace wafer::host {

// Connects to the board `config` names. Called on the board's worker thread (again after the
// link was dropped); must be thread-safe. UNAVAILABLE when the board cannot be reached; the
// Error's message says why.
using BoardLinkFactory =
    std::function<HostResult<std::unique_ptr<BoardLink>>(const BoardConfig& config)>;

// The board.fbs link over ZeroMQ (inproc://, ipc://, tcp://), each call bounded by the board's
// timeout_ms. A board with a curve_public_key is reached over CURVE with the host's key pair
// `host_secret_key` (Z85; its public key is derived); INVALID_ARGUMENT when it has none.
// REQUIRES: `context` (the embedded boards' context) and `clock` outlive every link.
BoardLinkFactory ZmqBoardLinkFactory(zmq::context_t& context, const Clock& clock,
                                     const std::string& host_secret_key = "");

}  // namespace wafer::host

#include "host/boards/board_link_factory.h"

#include <zmq.hpp>

namespace wafer::host {

BoardLinkFactory ZmqBoardLinkFactory(zmq::context_t& context, const Clock& clock) {
  (void)clock;  // The link's timeouts move to the injected clock with the common/net change.
  return [&context](const BoardConfig& config) {
    return ConnectBoardLink(context, config.endpoint, static_cast<int>(config.timeout_ms));
  };
}

}  // namespace wafer::host

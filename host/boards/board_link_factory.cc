#include "host/boards/board_link_factory.h"

#include "host/board/zmq_board_link.h"

namespace wafer::host {

BoardLinkFactory ZmqBoardLinkFactory(zmq::context_t& context, const Clock& clock) {
  return [&context, &clock](const BoardConfig& config) {
    return ConnectBoardLink(context, config.endpoint, static_cast<int>(config.timeout_ms), clock);
  };
}

}  // namespace wafer::host

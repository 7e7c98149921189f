#include "host/boards/board_link_factory.h"

#include "common/net/curve.h"
#include "host/board/zmq_board_link.h"

namespace wafer::host {

BoardLinkFactory ZmqBoardLinkFactory(zmq::context_t& context, const Clock& clock,
                                     const std::string& host_secret_key) {
  return [&context, &clock, host_secret_key](
             const BoardConfig& config) -> HostResult<std::unique_ptr<BoardLink>> {
    BoardLinkKeys keys;
    if (!config.curve_public_key.empty()) {
      Result<std::string> host_public = net::CurvePublicKeyOf(host_secret_key);
      if (!host_public.ok()) {
        return Error{StatusCode::kInvalidArgument,
                     "board at " + config.endpoint +
                         " has a curve_public_key but the host has no usable secret key"};
      }
      keys = BoardLinkKeys{config.curve_public_key, *host_public, host_secret_key};
    }
    return ConnectBoardLink(context, config.endpoint, static_cast<int>(config.timeout_ms), clock,
                            keys);
  };
}

}  // namespace wafer::host

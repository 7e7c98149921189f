#include "firmware/bare_metal/board_host_port.h"

#include "firmware/bare_metal/board_map.h"

namespace wafer::fw::board {

BoardHostPort::BoardHostPort(const Clock& clock)
    : channel_(kHostLinkBase, kHostRxWindow, kHostRxSlots, kHostRxSlotBytes, kHostTxWindow,
               kHostTxBytes, clock) {}

Result<size_t> BoardHostPort::Receive(std::span<std::byte> buffer, int64_t deadline_ns) {
  return channel_.Receive(buffer, deadline_ns);
}

Status BoardHostPort::Send(std::span<const std::byte> frame) {
  return channel_.Send(frame, kSendTimeoutNs);
}

}  // namespace wafer::fw::board

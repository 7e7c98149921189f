#include "common/net/router.h"

#include <utility>

namespace wafer::net {

Result<RouterReceipt> ReceiveFromPeer(Socket& router, int timeout_ms) {
  if (router.type() != SocketType::kRouter) return FailedPrecondition();
  Result<Message> received = router.Receive(timeout_ms);
  if (!received.ok()) return received.status();
  Message& message = *received;
  const std::span<const std::byte> id = message.frame(0);
  std::string peer(reinterpret_cast<const char*>(id.data()), id.size());
  const size_t after_id = message.frame_count() - 1;
  const bool delimited = after_id >= 1 && message.frame(1).empty();
  if (after_id == 1 || (after_id == 2 && delimited)) {
    std::string user_id = message.property("User-Id");
    return RouterReceipt(PeerMessage{std::move(peer),
                                     after_id == 1 ? Envelope::kDealer : Envelope::kReq,
                                     std::move(message), std::move(user_id)});
  }
  return RouterReceipt(MalformedMessage{std::move(peer), delimited ? after_id - 1 : after_id});
}

SendOutcome SendToPeer(Socket& router, std::string_view peer, std::span<const std::byte> payload,
                       Envelope envelope) {
  if (router.type() != SocketType::kRouter) return SendOutcome::kError;
  switch (envelope) {
    case Envelope::kDealer:
      return router.Send({AsBytes(peer), payload});
    case Envelope::kReq:
      return router.Send({AsBytes(peer), std::span<const std::byte>(), payload});
  }
  return SendOutcome::kError;
}

Result<int> PumpRouter(Socket& router, int burst,
                       const std::function<void(const PeerMessage&)>& on_message,
                       const std::function<void(const MalformedMessage&)>& on_malformed) {
  if (router.type() != SocketType::kRouter) return FailedPrecondition();
  int handled = 0;
  while (handled < burst) {
    Result<RouterReceipt> receipt = ReceiveFromPeer(router, 0);
    if (receipt.status().code() == StatusCode::kDeadlineExceeded) break;
    if (!receipt.ok()) return receipt.status();
    ++handled;
    if (const auto* message = std::get_if<PeerMessage>(&*receipt)) {
      on_message(*message);
    } else {
      on_malformed(std::get<MalformedMessage>(*receipt));
    }
  }
  return handled;
}

}  // namespace wafer::net

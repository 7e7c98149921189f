#include "common/net/router.h"

#include <utility>

namespace wafer::net {

namespace {

Result<RouterReceipt> Receive(Socket& router, int timeout_ms, bool attachments) {
  if (router.type() != SocketType::kRouter) return FailedPrecondition();
  Result<Message> received = router.Receive(timeout_ms);
  if (!received.ok()) return received.status();
  Message& message = *received;
  const std::span<const std::byte> id = message.frame(0);
  std::string peer(reinterpret_cast<const char*>(id.data()), id.size());
  const size_t after_id = message.frame_count() - 1;
  const bool delimited = after_id >= 1 && message.frame(1).empty();
  // Frames after the routing id and the delimiter, if any: the payload, then an attachment.
  const size_t body = delimited ? after_id - 1 : after_id;
  const bool attached = attachments && body == 2;
  if (after_id == 1 || (after_id == 2 && delimited) || attached) {
    // A DEALER's single frame is its payload even when empty; otherwise an empty first frame is
    // a REQ's delimiter.
    const Envelope envelope = after_id > 1 && delimited ? Envelope::kReq : Envelope::kDealer;
    std::string user_id = message.property("User-Id");
    PeerMessage m{std::move(peer), envelope, std::move(message), std::move(user_id)};
    m.has_attachment = attached;
    return RouterReceipt(std::move(m));
  }
  return RouterReceipt(MalformedMessage{std::move(peer), body});
}

}  // namespace

Result<RouterReceipt> ReceiveFromPeer(Socket& router, int timeout_ms) {
  return Receive(router, timeout_ms, /*attachments=*/false);
}

Result<RouterReceipt> ReceiveFromPeerWithAttachment(Socket& router, int timeout_ms) {
  return Receive(router, timeout_ms, /*attachments=*/true);
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

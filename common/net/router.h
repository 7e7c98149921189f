// The server side of a ROUTER socket: one client message in as (peer, payload), one reply out to
// a peer, and the bounded receive loop every ROUTER owner runs once per poll-loop turn.
//
// Framing. After the routing id a ROUTER sees [payload] from a DEALER and [empty, payload] from a
// REQ. Exactly those two shapes are messages; anything else is malformed (no payload, or more
// than one payload frame) and is reported with its frame count so the owner can answer with a
// typed error. A DEALER's single empty frame is a message with an empty payload: a REQ never
// sends a delimiter alone.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "common/net/message.h"
#include "common/net/socket.h"
#include "common/result.h"

namespace wafer::net {

// How a client framed its message; a reply must be framed the same way for a REQ to accept it.
enum class Envelope {
  kDealer,  // [payload]
  kReq,     // [empty delimiter, payload]
};

// A well-framed client message.
struct PeerMessage {
  std::string peer;  // The routing id libzmq gave the client's connection (opaque bytes).
  Envelope envelope = Envelope::kDealer;
  Message frames;  // As received, routing id first.
  // The name the ZAP handler gave the client's key (CURVE sockets); empty on a plain socket.
  std::string user_id;

  // An attachment frame follows the payload (ReceiveFromPeerWithAttachment only).
  bool has_attachment = false;

  // The payload frame: the last one in both framings, or the one before the attachment. Valid
  // while this PeerMessage lives.
  std::span<const std::byte> payload() const {
    return frames.frame(frames.frame_count() - (has_attachment ? 2 : 1));
  }
  // The attachment frame; empty when there is none. Valid while this PeerMessage lives.
  std::span<const std::byte> attachment() const {
    return has_attachment ? frames.frame(frames.frame_count() - 1) : std::span<const std::byte>();
  }
};

// A message that was neither [payload] nor [empty, payload].
struct MalformedMessage {
  std::string peer;
  // Frames after the routing id and (if the first was empty) the delimiter: 0, or 2 and more.
  size_t payload_frames = 0;
};

using RouterReceipt = std::variant<PeerMessage, MalformedMessage>;

// Receives one client message from `router`, waiting up to `timeout_ms` (0: only what is queued).
// Returns:
//   OK                - a PeerMessage or a MalformedMessage (the message is consumed either way).
//   DEADLINE_EXCEEDED - nothing arrived in time.
//   FAILED_PRECONDITION - `router` is not a ROUTER.
//   other codes       - as Socket::Receive.
// REQUIRES: called on the thread that owns `router`.
Result<RouterReceipt> ReceiveFromPeer(Socket& router, int timeout_ms);

// As ReceiveFromPeer, where a client may add one attachment frame after its payload (a board
// link's bulk data, sent without copying by Socket::SendWithAttachment): [payload, attachment]
// and [empty, payload, attachment] are messages too (has_attachment), and only more frames than
// that are malformed. [empty, payload] stays a REQ's payload, not an empty payload with an
// attachment.
Result<RouterReceipt> ReceiveFromPeerWithAttachment(Socket& router, int timeout_ms);

// Sends `payload` to `peer` without blocking: [peer, payload] for Envelope::kDealer,
// [peer, empty, payload] for Envelope::kReq. With router_mandatory (the default) an unknown or
// disconnected peer is kPeerGone and a peer at its high-water mark is kPeerBacklog; without it
// libzmq drops both silently and this returns kSent. kError when `router` is not a ROUTER.
// REQUIRES: called on the thread that owns `router`.
SendOutcome SendToPeer(Socket& router, std::string_view peer, std::span<const std::byte> payload,
                       Envelope envelope = Envelope::kDealer);

// Handles up to `burst` queued client messages without waiting, in arrival order: each
// well-framed one goes to `on_message`, each malformed one to `on_malformed`. The bound keeps one
// busy socket from starving the others in a poll loop; the callbacks may send on `router`.
// Returns:
//   OK          - how many messages were handled (both kinds); fewer than `burst` means the queue
//                 is empty.
//   FAILED_PRECONDITION - `router` is not a ROUTER.
//   UNAVAILABLE / INTERNAL - as Socket::Receive; messages handled before the failure stay handled.
// REQUIRES: called on the thread that owns `router`; burst > 0.
Result<int> PumpRouter(Socket& router, int burst,
                       const std::function<void(const PeerMessage&)>& on_message,
                       const std::function<void(const MalformedMessage&)>& on_malformed);

}  // namespace wafer::net

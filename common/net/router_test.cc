#include "common/net/router.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace wafer::net {
namespace {

constexpr int kWaitMs = 10000;  // Bounds a wait that should end at once; never asserted on.

std::string Text(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto bound = Socket::Bind(context_, SocketType::kRouter, "inproc://router-test", {});
    ASSERT_TRUE(bound.ok()) << bound.error().message;
    router_ = std::move(bound).value();
  }

  std::unique_ptr<Socket> Client(SocketType type) {
    auto client = Socket::Connect(context_, type, router_->last_endpoint(), {});
    EXPECT_TRUE(client.ok()) << client.error().message;
    return client.ok() ? std::move(client).value() : nullptr;
  }

  // The next receipt, which the test expects to be there.
  RouterReceipt Next() {
    Result<RouterReceipt> r = ReceiveFromPeer(*router_, kWaitMs);
    EXPECT_TRUE(r.ok()) << r.status().name();
    return r.ok() ? std::move(r).value() : RouterReceipt(MalformedMessage{"<none>", 99});
  }

  zmq::context_t context_{1};
  std::unique_ptr<Socket> router_;
};

TEST_F(RouterTest, DealerAndReqFramingAreAcceptedAndRepliesFramedToMatch) {
  auto dealer = Client(SocketType::kDealer);
  auto req = Client(SocketType::kReq);
  ASSERT_TRUE(dealer && req);

  ASSERT_EQ(dealer->Send(AsBytes("from dealer")), SendOutcome::kSent);
  RouterReceipt a = Next();
  ASSERT_TRUE(std::holds_alternative<PeerMessage>(a));
  const PeerMessage& from_dealer = std::get<PeerMessage>(a);
  EXPECT_EQ(from_dealer.envelope, Envelope::kDealer);
  EXPECT_EQ(Text(from_dealer.payload()), "from dealer");
  EXPECT_FALSE(from_dealer.peer.empty());

  ASSERT_EQ(req->Send(AsBytes("from req")), SendOutcome::kSent);  // REQ adds the delimiter.
  RouterReceipt b = Next();
  ASSERT_TRUE(std::holds_alternative<PeerMessage>(b));
  const PeerMessage& from_req = std::get<PeerMessage>(b);
  EXPECT_EQ(from_req.envelope, Envelope::kReq);
  EXPECT_EQ(Text(from_req.payload()), "from req");
  EXPECT_NE(from_req.peer, from_dealer.peer);

  // Each reply reaches its own client; the REQ takes its reply only with the delimiter.
  EXPECT_EQ(SendToPeer(*router_, from_req.peer, AsBytes("to req"), from_req.envelope),
            SendOutcome::kSent);
  EXPECT_EQ(SendToPeer(*router_, from_dealer.peer, AsBytes("to dealer")), SendOutcome::kSent);
  Result<Message> to_req = req->Receive(kWaitMs);
  ASSERT_TRUE(to_req.ok());
  ASSERT_EQ(to_req->frame_count(), 1u);
  EXPECT_EQ(Text(to_req->frame(0)), "to req");
  Result<Message> to_dealer = dealer->Receive(kWaitMs);
  ASSERT_TRUE(to_dealer.ok());
  ASSERT_EQ(to_dealer->frame_count(), 1u);
  EXPECT_EQ(Text(to_dealer->frame(0)), "to dealer");
}

TEST_F(RouterTest, MalformedFramingIsReportedWithItsFrameCount) {
  auto dealer = Client(SocketType::kDealer);
  ASSERT_TRUE(dealer);
  const std::span<const std::byte> empty;
  ASSERT_EQ(dealer->Send({AsBytes("a"), AsBytes("b"), AsBytes("c")}), SendOutcome::kSent);
  ASSERT_EQ(dealer->Send({empty, AsBytes("a"), AsBytes("b")}), SendOutcome::kSent);
  ASSERT_EQ(dealer->Send({empty, empty}), SendOutcome::kSent);  // REQ-shaped, empty payload.
  ASSERT_EQ(dealer->Send(empty), SendOutcome::kSent);           // DEALER-shaped, empty payload.
  ASSERT_EQ(dealer->Send({empty, AsBytes("ok")}), SendOutcome::kSent);

  RouterReceipt three = Next();
  ASSERT_TRUE(std::holds_alternative<MalformedMessage>(three));
  EXPECT_EQ(std::get<MalformedMessage>(three).payload_frames, 3u);
  EXPECT_FALSE(std::get<MalformedMessage>(three).peer.empty());

  RouterReceipt two = Next();
  ASSERT_TRUE(std::holds_alternative<MalformedMessage>(two));
  EXPECT_EQ(std::get<MalformedMessage>(two).payload_frames, 2u);

  RouterReceipt req_empty = Next();
  ASSERT_TRUE(std::holds_alternative<PeerMessage>(req_empty));
  EXPECT_EQ(std::get<PeerMessage>(req_empty).envelope, Envelope::kReq);
  EXPECT_TRUE(std::get<PeerMessage>(req_empty).payload().empty());

  RouterReceipt dealer_empty = Next();
  ASSERT_TRUE(std::holds_alternative<PeerMessage>(dealer_empty));
  EXPECT_EQ(std::get<PeerMessage>(dealer_empty).envelope, Envelope::kDealer);
  EXPECT_TRUE(std::get<PeerMessage>(dealer_empty).payload().empty());

  RouterReceipt ok = Next();
  ASSERT_TRUE(std::holds_alternative<PeerMessage>(ok));
  EXPECT_EQ(Text(std::get<PeerMessage>(ok).payload()), "ok");

  EXPECT_EQ(ReceiveFromPeer(*router_, 0).status().code(), StatusCode::kDeadlineExceeded);
}

// A payload with an attachment sent without a copy: over inproc:// the router receives the very
// bytes the sender holds, and the owner is kept until the last message that reads them is gone.
// Only the attachment-aware receive takes the extra frame; the plain one reports it malformed.
TEST_F(RouterTest, AnAttachmentArrivesWithoutACopyAndKeepsItsOwnerUntilReleased) {
  auto dealer = Client(SocketType::kDealer);
  ASSERT_TRUE(dealer);
  auto owner = std::make_shared<std::string>(4096, 'w');
  const std::span<const std::byte> bytes = AsBytes(*owner);
  const std::span<const std::byte> header[] = {AsBytes("header")};
  ASSERT_EQ(dealer->SendWithAttachment(header, bytes, owner), SendOutcome::kSent);
  {
    Result<RouterReceipt> r = ReceiveFromPeerWithAttachment(*router_, kWaitMs);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(std::holds_alternative<PeerMessage>(*r));
    const PeerMessage& m = std::get<PeerMessage>(*r);
    EXPECT_TRUE(m.has_attachment);
    EXPECT_EQ(m.envelope, Envelope::kDealer);
    EXPECT_EQ(Text(m.payload()), "header");
    EXPECT_EQ(m.attachment().data(), bytes.data());  // The sender's memory itself.
    EXPECT_EQ(m.attachment().size(), bytes.size());
    EXPECT_GT(owner.use_count(), 1);  // Held by the message.
  }
  EXPECT_EQ(owner.use_count(), 1);  // Released with it.

  // Without attachments allowed, the same framing is malformed (two payload frames).
  ASSERT_EQ(dealer->SendWithAttachment(header, bytes, owner), SendOutcome::kSent);
  RouterReceipt plain = Next();
  ASSERT_TRUE(std::holds_alternative<MalformedMessage>(plain));
  EXPECT_EQ(std::get<MalformedMessage>(plain).payload_frames, 2u);
  // A single frame is still a plain message to the attachment-aware receive.
  ASSERT_EQ(dealer->Send(AsBytes("alone")), SendOutcome::kSent);
  Result<RouterReceipt> alone = ReceiveFromPeerWithAttachment(*router_, kWaitMs);
  ASSERT_TRUE(alone.ok() && std::holds_alternative<PeerMessage>(*alone));
  EXPECT_FALSE(std::get<PeerMessage>(*alone).has_attachment);
  EXPECT_TRUE(std::get<PeerMessage>(*alone).attachment().empty());
  EXPECT_EQ(Text(std::get<PeerMessage>(*alone).payload()), "alone");
}

TEST_F(RouterTest, SendToAnUnknownPeerIsPeerGoneWithoutThrowing) {
  EXPECT_EQ(SendToPeer(*router_, "nobody", AsBytes("hello?")), SendOutcome::kPeerGone);
  EXPECT_EQ(SendToPeer(*router_, "", AsBytes("hello?"), Envelope::kReq), SendOutcome::kPeerGone);

  // Without router_mandatory libzmq drops the message silently: the send looks fine.
  SocketOptions lax;
  lax.router_mandatory = false;
  auto quiet = Socket::Bind(context_, SocketType::kRouter, "inproc://lax-router", lax);
  ASSERT_TRUE(quiet.ok()) << quiet.error().message;
  EXPECT_EQ(SendToPeer(**quiet, "nobody", AsBytes("hello?")), SendOutcome::kSent);
}

TEST_F(RouterTest, APeerAtItsHighWaterMarkIsABacklogAndNothingIsLost) {
  SocketOptions tight;
  tight.send_high_water_mark = 1;
  tight.receive_high_water_mark = 1;
  auto router = Socket::Bind(context_, SocketType::kRouter, "inproc://tight", tight);
  ASSERT_TRUE(router.ok()) << router.error().message;
  auto dealer = Socket::Connect(context_, SocketType::kDealer, "inproc://tight", tight);
  ASSERT_TRUE(dealer.ok()) << dealer.error().message;
  ASSERT_EQ((*dealer)->Send(AsBytes("hello")), SendOutcome::kSent);
  Result<RouterReceipt> hello = ReceiveFromPeer(**router, kWaitMs);
  ASSERT_TRUE(hello.ok());
  const std::string peer = std::get<PeerMessage>(*hello).peer;

  int sent = 0;
  SendOutcome outcome = SendOutcome::kSent;
  while (sent < 1000) {
    outcome = SendToPeer(**router, peer, AsBytes(std::to_string(sent)));
    if (outcome != SendOutcome::kSent) break;
    ++sent;
  }
  EXPECT_EQ(outcome, SendOutcome::kPeerBacklog);
  EXPECT_GE(sent, 1);
  EXPECT_LT(sent, 1000);
  // Everything reported sent arrives, in order, and nothing else.
  for (int i = 0; i < sent; ++i) {
    Result<Message> m = (*dealer)->Receive(kWaitMs);
    ASSERT_TRUE(m.ok()) << i;
    EXPECT_EQ(Text(m->frame(0)), std::to_string(i));
  }
  EXPECT_EQ((*dealer)->Receive(0).status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(RouterTest, PumpRouterHandlesMessagesInOrderUpToTheBurst) {
  auto dealer = Client(SocketType::kDealer);
  ASSERT_TRUE(dealer);
  ASSERT_EQ(dealer->Send(AsBytes("m1")), SendOutcome::kSent);
  ASSERT_EQ(dealer->Send({AsBytes("x"), AsBytes("y"), AsBytes("z")}), SendOutcome::kSent);
  ASSERT_EQ(dealer->Send(AsBytes("m2")), SendOutcome::kSent);
  ASSERT_EQ(dealer->Send(AsBytes("m3")), SendOutcome::kSent);

  std::vector<std::string> events;
  auto on_message = [&](const PeerMessage& m) {
    events.push_back(Text(m.payload()));
    // Replies from inside the pump go out at once.
    EXPECT_EQ(SendToPeer(*router_, m.peer, m.payload()), SendOutcome::kSent);
  };
  auto on_malformed = [&](const MalformedMessage& m) {
    events.push_back("malformed:" + std::to_string(m.payload_frames));
  };
  // On inproc:// the four messages are queued at the router once the sends returned.
  Result<int> first = PumpRouter(*router_, 2, on_message, on_malformed);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 2);
  EXPECT_EQ(events, (std::vector<std::string>{"m1", "malformed:3"}));
  Result<int> second = PumpRouter(*router_, 256, on_message, on_malformed);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, 2);
  EXPECT_EQ(events, (std::vector<std::string>{"m1", "malformed:3", "m2", "m3"}));
  Result<int> idle = PumpRouter(*router_, 256, on_message, on_malformed);
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(*idle, 0);

  for (const char* want : {"m1", "m2", "m3"}) {
    Result<Message> echo = dealer->Receive(kWaitMs);
    ASSERT_TRUE(echo.ok());
    EXPECT_EQ(Text(echo->frame(0)), want);
  }
}

TEST_F(RouterTest, RouterHelpersRefuseOtherSocketTypes) {
  auto dealer = Client(SocketType::kDealer);
  ASSERT_TRUE(dealer);
  EXPECT_EQ(ReceiveFromPeer(*dealer, 0).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(SendToPeer(*dealer, "peer", AsBytes("x")), SendOutcome::kError);
  int calls = 0;
  EXPECT_EQ(PumpRouter(
                *dealer, 8, [&](const PeerMessage&) { ++calls; },
                [&](const MalformedMessage&) { ++calls; })
                .status()
                .code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace wafer::net

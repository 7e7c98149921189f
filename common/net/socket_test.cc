#include "common/net/socket.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/net/router.h"

namespace wafer::net {
namespace {

std::string Text(std::span<const std::byte> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(SocketTest, BindToABadEndpointReturnsAStatusNamingIt) {
  zmq::context_t context(1);
  for (const std::string endpoint : {"tcp://127.0.0.1:notaport", "bogus://somewhere"}) {
    auto socket = Socket::Bind(context, SocketType::kRouter, endpoint, SocketOptions{});
    ASSERT_EQ(socket.status().code(), StatusCode::kInvalidArgument) << endpoint;
    const std::string& detail = socket.error().message;
    EXPECT_NE(detail.find(endpoint), std::string::npos) << detail;
    EXPECT_NE(detail.find("ROUTER"), std::string::npos) << detail;
  }
  const std::string missing_dir = "ipc:///nonexistent-waferd-net-test-dir/x.sock";
  auto missing = Socket::Bind(context, SocketType::kRouter, missing_dir, {});
  ASSERT_EQ(missing.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(missing.error().message.find(missing_dir), std::string::npos)
      << missing.error().message;
  EXPECT_EQ(Socket::Bind(context, SocketType::kPair, "bogus://x", {}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(SocketTest, AnEndpointInUseIsUnavailable) {
  zmq::context_t context(1);
  auto first = Socket::Bind(context, SocketType::kRouter, "inproc://taken", {});
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = Socket::Bind(context, SocketType::kRouter, "inproc://taken", {});
  ASSERT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.error().message.find("inproc://taken"), std::string::npos)
      << second.error().message;
}

TEST(SocketTest, OptionsOutOfRangeAreRefusedBeforeAnySocketExists) {
  zmq::context_t context(1);
  SocketOptions options;
  options.send_high_water_mark = -1;
  auto refused = Socket::Bind(context, SocketType::kDealer, "inproc://o", options);
  ASSERT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("high-water"), std::string::npos)
      << refused.error().message;
  options = SocketOptions{};
  options.max_message_bytes = -2;
  EXPECT_EQ(Socket::Connect(context, SocketType::kDealer, "inproc://o", options)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // The endpoint is still free: nothing was bound by the refused calls.
  auto free_again = Socket::Bind(context, SocketType::kPair, "inproc://o", {});
  EXPECT_TRUE(free_again.ok()) << free_again.error().message;
}

TEST(SocketTest, WildcardTcpPortIsResolvedAndFramesArriveInOrder) {
  zmq::context_t context(1);
  auto server = Socket::Bind(context, SocketType::kPair, "tcp://127.0.0.1:*", {});
  ASSERT_TRUE(server.ok()) << server.error().message;
  const std::string endpoint = (*server)->last_endpoint();
  ASSERT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << endpoint;
  EXPECT_EQ(endpoint.find('*'), std::string::npos) << endpoint;
  auto client = Socket::Connect(context, SocketType::kPair, endpoint, {});
  ASSERT_TRUE(client.ok()) << client.error().message;
  EXPECT_EQ((*client)->last_endpoint(), endpoint);

  ASSERT_EQ((*client)->Send({AsBytes("one"), AsBytes(""), AsBytes("three")}), SendOutcome::kSent);
  ASSERT_EQ((*client)->Send(AsBytes("single")), SendOutcome::kSent);
  Result<Message> first = (*server)->Receive(10000);
  ASSERT_TRUE(first.ok()) << first.status().name();
  ASSERT_EQ(first->frame_count(), 3u);
  EXPECT_EQ(Text(first->frame(0)), "one");
  EXPECT_EQ(Text(first->frame(1)), "");
  EXPECT_EQ(Text(first->frame(2)), "three");
  Result<Message> second = (*server)->Receive(10000);
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->frame_count(), 1u);
  EXPECT_EQ(Text(second->frame(0)), "single");
  EXPECT_EQ((*server)->Receive(0).status().code(), StatusCode::kDeadlineExceeded);
}

TEST(SocketTest, ReceiveOnAnEmptySocketAndBadTimeouts) {
  zmq::context_t context(1);
  auto socket = Socket::Bind(context, SocketType::kPair, "inproc://empty", {});
  ASSERT_TRUE(socket.ok()) << socket.error().message;
  EXPECT_EQ((*socket)->Receive(0).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*socket)->Receive(1).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*socket)->Receive(-1).status().code(), StatusCode::kInvalidArgument);
}

TEST(SocketTest, SendWithoutAPeerIsABacklogAndNoFramesIsAnError) {
  zmq::context_t context(1);
  auto lonely = Socket::Bind(context, SocketType::kPair, "inproc://lonely", {});
  ASSERT_TRUE(lonely.ok()) << lonely.error().message;
  EXPECT_EQ((*lonely)->Send(AsBytes("anyone?")), SendOutcome::kPeerBacklog);
  EXPECT_EQ((*lonely)->Send(std::span<const std::span<const std::byte>>()), SendOutcome::kError);
  EXPECT_STREQ(SendOutcomeName(SendOutcome::kPeerBacklog), "peer_backlog");
}

TEST(SocketTest, AShutDownContextIsReportedNotThrown) {
  zmq::context_t context(1);
  auto a = Socket::Bind(context, SocketType::kPair, "inproc://closing", {});
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = Socket::Connect(context, SocketType::kPair, "inproc://closing", {});
  ASSERT_TRUE(b.ok()) << b.error().message;
  context.shutdown();
  EXPECT_EQ((*a)->Receive(1000).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ((*b)->Send(AsBytes("late")), SendOutcome::kError);
  EXPECT_EQ(Socket::Bind(context, SocketType::kPair, "inproc://after", {}).status().code(),
            StatusCode::kUnavailable);
}

// ZMQ_MAXMSGSIZE: a message of exactly the limit arrives; a larger one makes libzmq drop the
// connection, so it never arrives, while the client (which reconnects) keeps working.
TEST(SocketTest, MaxMessageSizeIsEnforcedOnReceive) {
  zmq::context_t context(1);
  SocketOptions limited;
  limited.max_message_bytes = 1024;
  auto server = Socket::Bind(context, SocketType::kRouter, "tcp://127.0.0.1:*", limited);
  ASSERT_TRUE(server.ok()) << server.error().message;
  auto client =
      Socket::Connect(context, SocketType::kDealer, (*server)->last_endpoint(), {});
  ASSERT_TRUE(client.ok()) << client.error().message;

  const std::string at_limit(1024, 'a');
  ASSERT_EQ((*client)->Send(AsBytes(at_limit)), SendOutcome::kSent);
  Result<RouterReceipt> first = ReceiveFromPeer(**server, 10000);
  ASSERT_TRUE(first.ok()) << first.status().name();
  ASSERT_TRUE(std::holds_alternative<PeerMessage>(*first));
  EXPECT_EQ(std::get<PeerMessage>(*first).payload().size(), 1024u);

  const std::string over_limit(1025, 'b');
  ASSERT_EQ((*client)->Send(AsBytes(over_limit)), SendOutcome::kSent);
  // Small markers until one gets through on the reconnected connection. Whatever arrives must
  // be a marker: the oversized message is never delivered.
  std::vector<size_t> sizes;
  bool marker_arrived = false;
  for (int round = 0; round < 50 && !marker_arrived; ++round) {
    ASSERT_EQ((*client)->Send(AsBytes("marker")), SendOutcome::kSent);
    Result<RouterReceipt> r = ReceiveFromPeer(**server, 200);
    if (r.status().code() == StatusCode::kDeadlineExceeded) continue;
    ASSERT_TRUE(r.ok()) << r.status().name();
    ASSERT_TRUE(std::holds_alternative<PeerMessage>(*r));
    sizes.push_back(std::get<PeerMessage>(*r).payload().size());
    marker_arrived = Text(std::get<PeerMessage>(*r).payload()) == "marker";
  }
  EXPECT_TRUE(marker_arrived);
  for (size_t size : sizes) EXPECT_EQ(size, 6u);
}

}  // namespace
}  // namespace wafer::net

#include "common/net/owned_channel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace wafer::net {
namespace {

// Counts its destructions, so a test can see who destroyed an object and when.
struct Tracked {
  explicit Tracked(int* destroyed, int value = 0) : destroyed(destroyed), value(value) {}
  ~Tracked() { ++*destroyed; }
  int* destroyed;
  int value;
};

TEST(OwnedChannelTest, HandsOverThePointerItself) {
  zmq::context_t context(1);
  auto channel = OpenOwnedChannel(context, "inproc://owned-handover");
  ASSERT_TRUE(channel.ok()) << channel.error().message;
  int destroyed = 0;
  auto item = std::make_unique<Tracked>(&destroyed, 42);
  const Tracked* address = item.get();
  ASSERT_TRUE(SendOwned(*channel->bound, std::move(item)));
  EXPECT_EQ(destroyed, 0);
  std::unique_ptr<Tracked> got = ReceiveOwned<Tracked>(*channel->connected);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got.get(), address);  // Not a copy.
  EXPECT_EQ(got->value, 42);
  EXPECT_EQ(ReceiveOwned<Tracked>(*channel->connected), nullptr);  // One send, one object.
  got.reset();
  EXPECT_EQ(destroyed, 1);

  // And back the other way.
  ASSERT_TRUE(SendOwned(*channel->connected, std::make_unique<Tracked>(&destroyed, 7)));
  std::unique_ptr<Tracked> back = ReceiveOwned<Tracked>(*channel->bound);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->value, 7);
}

TEST(OwnedChannelTest, ReceiveOwnedOnAnEmptyChannelReturnsNull) {
  zmq::context_t context(1);
  auto channel = OpenOwnedChannel(context, "inproc://owned-empty");
  ASSERT_TRUE(channel.ok()) << channel.error().message;
  EXPECT_EQ(ReceiveOwned<int>(*channel->bound), nullptr);
  EXPECT_EQ(ReceiveOwned<int>(*channel->connected), nullptr);
}

TEST(OwnedChannelTest, AnItemThatCannotBeSentIsDestroyedBySendOwned) {
  zmq::context_t context(1);
  auto lonely =
      Socket::Bind(context, SocketType::kPair, "inproc://owned-lonely", OwnedChannelOptions());
  ASSERT_TRUE(lonely.ok()) << lonely.error().message;
  int destroyed = 0;
  EXPECT_FALSE(SendOwned(**lonely, std::make_unique<Tracked>(&destroyed)));
  EXPECT_EQ(destroyed, 1);
}

TEST(OwnedChannelTest, EndpointMustBeInprocAndUnused) {
  zmq::context_t context(1);
  auto tcp = OpenOwnedChannel(context, "tcp://127.0.0.1:*");
  ASSERT_EQ(tcp.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(tcp.error().message.find("tcp://127.0.0.1:*"), std::string::npos)
      << tcp.error().message;
  auto first = OpenOwnedChannel(context, "inproc://owned-dup");
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto dup = OpenOwnedChannel(context, "inproc://owned-dup");
  ASSERT_EQ(dup.code(), StatusCode::kUnavailable);
  EXPECT_NE(dup.error().message.find("inproc://owned-dup"), std::string::npos)
      << dup.error().message;
}

// Two threads, each owning one end: every object comes back, in order, changed by the other side.
TEST(OwnedChannelTest, ObjectsCrossThreadsInOrder) {
  zmq::context_t context(1);
  auto channel = OpenOwnedChannel(context, "inproc://owned-threads");
  ASSERT_TRUE(channel.ok()) << channel.error().message;
  constexpr int kCount = 200;
  int destroyed = 0;
  std::unique_ptr<Socket> worker_end = std::move(channel->connected);
  std::thread worker([&worker_end] {
    for (int handled = 0; handled < kCount;) {
      zmq::pollitem_t item{worker_end->handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(10000)) == 0) return;  // Test fails.
      while (auto t = ReceiveOwned<Tracked>(*worker_end)) {
        t->value *= 2;
        if (!SendOwned(*worker_end, std::move(t))) return;
        ++handled;
      }
    }
  });
  int sent = 0;
  std::vector<int> received;
  bool stalled = false;  // Failures end the loop so that the worker is still joined.
  while (received.size() < kCount && !stalled) {
    // The channel holds at most 1000 objects each way; stay well under it.
    while (sent < kCount && sent - static_cast<int>(received.size()) < 100) {
      EXPECT_TRUE(SendOwned(*channel->bound, std::make_unique<Tracked>(&destroyed, sent)));
      ++sent;
    }
    zmq::pollitem_t item{channel->bound->handle(), 0, ZMQ_POLLIN, 0};
    stalled = zmq::poll(&item, 1, std::chrono::milliseconds(10000)) == 0;
    while (auto t = ReceiveOwned<Tracked>(*channel->bound)) received.push_back(t->value);
  }
  worker.join();
  EXPECT_FALSE(stalled);
  ASSERT_EQ(received.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(received[i], 2 * i);
  EXPECT_EQ(destroyed, kCount);  // Each object destroyed once, by its final receiver.
}

}  // namespace
}  // namespace wafer::net

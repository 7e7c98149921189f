// One ZeroMQ message as received: its frames in order, owning their bytes.
#pragma once

#include <cassert>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <zmq.hpp>

namespace wafer::net {

// The bytes of a string, for sending.
inline std::span<const std::byte> AsBytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// Move-only. A single-frame message (the common case) allocates nothing besides libzmq's own
// buffer. Frame bytes are not aligned: copy them before reading typed data (for example before
// flatbuffers::Verifier, which UBSan catches reading unaligned fields).
// Thread-compatible: a Message may be handed to another thread.
class Message {
 public:
  Message() = default;
  Message(Message&&) = default;
  Message& operator=(Message&&) = default;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  size_t frame_count() const { return has_first_ ? 1 + rest_.size() : 0; }

  // A metadata property of the connection the message came on ("User-Id": the name the ZAP
  // handler gave an authenticated client); empty when it has none.
  std::string property(const char* name) const {
    if (!has_first_) return {};
    // The last frame came off the connection; a ROUTER's routing-id frame carries no metadata.
    const zmq::message_t& last = rest_.empty() ? first_ : rest_.back();
    const char* value = zmq_msg_gets(const_cast<zmq_msg_t*>(last.handle()), name);
    return value == nullptr ? std::string() : std::string(value);
  }

  // The bytes of frame `index`, valid while this Message lives.
  // REQUIRES: index < frame_count().
  std::span<const std::byte> frame(size_t index) const {
    assert(index < frame_count());
    const zmq::message_t& m = index == 0 ? first_ : rest_[index - 1];
    return {static_cast<const std::byte*>(m.data()), m.size()};
  }

 private:
  friend class Socket;

  void Append(zmq::message_t&& frame) {
    if (!has_first_) {
      first_ = std::move(frame);
      has_first_ = true;
    } else {
      rest_.push_back(std::move(frame));
    }
  }

  zmq::message_t first_;
  bool has_first_ = false;
  std::vector<zmq::message_t> rest_;
};

}  // namespace wafer::net

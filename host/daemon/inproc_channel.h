// Hands ownership of heap objects between two threads over an inproc:// PAIR socket: the frame
// carries the pointer, so nothing is copied or serialized. Each end belongs to one thread.
#pragma once

#include <cstring>
#include <memory>

#include <zmq.hpp>

namespace wafer::host {

// Sends `item`; on failure (the peer is gone) the item is destroyed here. Returns success.
template <typename T>
bool SendOwned(zmq::socket_t& socket, std::unique_ptr<T> item) {
  T* raw = item.get();
  zmq::message_t frame(sizeof(raw));
  std::memcpy(frame.data(), &raw, sizeof(raw));
  try {
    if (!socket.send(frame, zmq::send_flags::dontwait)) return false;
  } catch (const zmq::error_t&) {
    return false;
  }
  item.release();  // Now owned by the receiver.
  return true;
}

// Receives one item without blocking; nullptr when none is waiting.
template <typename T>
std::unique_ptr<T> ReceiveOwned(zmq::socket_t& socket) {
  zmq::message_t frame;
  try {
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) return nullptr;
  } catch (const zmq::error_t&) {
    return nullptr;
  }
  if (frame.size() != sizeof(T*)) return nullptr;
  T* raw = nullptr;
  std::memcpy(&raw, frame.data(), sizeof(raw));
  return std::unique_ptr<T>(raw);
}

}  // namespace wafer::host

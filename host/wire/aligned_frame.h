// ZeroMQ frames are often not 8-byte aligned; FlatBuffers accessors on such memory are undefined
// behaviour. AlignedCopy copies a frame into a thread-local, 8-byte aligned buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace wafer::host {

// Returns a view of the copy, valid until the next AlignedCopy on the same thread.
inline std::span<const uint8_t> AlignedCopy(std::span<const std::byte> frame) {
  thread_local std::vector<uint64_t> buffer;
  buffer.resize(frame.size() / 8 + 1);
  if (!frame.empty()) std::memcpy(buffer.data(), frame.data(), frame.size());
  return {reinterpret_cast<const uint8_t*>(buffer.data()), frame.size()};
}

}  // namespace wafer::host

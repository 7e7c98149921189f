// hal::HostPort over two queues, for the firmware's tests and fuzz targets (host-side code: it uses
// the heap, so it lives outside firmware/): frames pushed to `in` are received in order (none:
// DEADLINE_EXCEEDED at once), each with the next entry of `attachments` as its attachment (none
// when that runs out), and every frame sent lands in `out`.
#pragma once

#include <algorithm>
#include <cstring>
#include <deque>
#include <vector>

#include "firmware/hal/host_port.h"

namespace wafer::fw::testing {

class QueuePort final : public hal::HostPort {
 public:
  Result<size_t> Receive(std::span<std::byte> buffer, int64_t) override {
    if (in.empty()) return DeadlineExceeded();
    std::vector<std::byte> f = std::move(in.front());
    in.pop_front();
    attached.clear();
    if (!attachments.empty()) {
      attached = std::move(attachments.front());
      attachments.pop_front();
    }
    std::memcpy(buffer.data(), f.data(), std::min(buffer.size(), f.size()));
    return f.size();
  }
  Status Send(std::span<const std::byte> frame) override {
    out.emplace_back(frame.begin(), frame.end());
    return OkStatus();
  }
  std::span<const std::byte> attachment() const override { return attached; }
  std::deque<std::vector<std::byte>> in;
  std::deque<std::vector<std::byte>> attachments;
  std::vector<std::byte> attached;
  std::deque<std::vector<std::byte>> out;
};

}  // namespace wafer::fw::testing

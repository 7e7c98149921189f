// The board controller's Clock: its 64-bit timer (board_map.h, namespace timer).
#pragma once

#include <cstdint>

#include "common/clock.h"
#include "firmware/bare_metal/register_bus.h"

namespace wafer::fw::board {

// Thread-safe in the only sense a single-core controller needs: reads have no side effects
// beyond the hardware's LO/HI latch, which each reading takes in order.
class BoardClock final : public Clock {
 public:
  BoardClock();
  int64_t NowNanos() const override;
  int64_t UnixMillis() const override;  // As the board management controller set it.

 private:
  RegisterBus regs_;
};

}  // namespace wafer::fw::board

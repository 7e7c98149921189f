#include "firmware/bare_metal/board_clock.h"

#include "firmware/bare_metal/board_map.h"

namespace wafer::fw::board {

BoardClock::BoardClock() : regs_(kTimerBase) {}

int64_t BoardClock::NowNanos() const {
  return static_cast<int64_t>(regs_.Read64<timer::kMonoNsLo, timer::kMonoNsHi>());
}

int64_t BoardClock::UnixMillis() const {
  return static_cast<int64_t>(regs_.Read64<timer::kUnixMsLo, timer::kUnixMsHi>());
}

}  // namespace wafer::fw::board

#include "common/clock.h"

#include <time.h>

namespace wafer {

int64_t SystemClock::NowNanos() const {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

SystemClock& SystemClock::Get() {
  static SystemClock clock;
  return clock;
}

int64_t SystemClock::UnixMillis() const {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace wafer

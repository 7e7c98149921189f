// Injected time. Scheduler, firmware and simulator read time only through a Clock so that tests
// can drive them deterministically with FakeClock.
#pragma once

#include <atomic>
#include <cstdint>

namespace wafer {

// Monotonic nanoseconds since an arbitrary epoch. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowNanos() const = 0;
};

// The process's monotonic clock (CLOCK_MONOTONIC). Not for firmware builds without an OS.
class SystemClock final : public Clock {
 public:
  int64_t NowNanos() const override;
  static SystemClock& Get();
};

// A clock that moves only when told. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_nanos = 0) : now_(start_nanos) {}
  int64_t NowNanos() const override { return now_.load(std::memory_order_relaxed); }
  void Advance(int64_t nanos) { now_.fetch_add(nanos, std::memory_order_relaxed); }
  void Set(int64_t nanos) { now_.store(nanos, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};

// Wall-clock milliseconds since the Unix epoch, for deadlines that cross process boundaries
// (a client's absolute deadline). Host only.
int64_t UnixMillisNow();

}  // namespace wafer

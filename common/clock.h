// Injected time. Scheduler, firmware and simulator read time only through a Clock so that tests
// can drive them deterministically with FakeClock.
#pragma once

#include <atomic>
#include <cstdint>

namespace wafer {

// Two readings of one time source. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic nanoseconds since an arbitrary epoch: for intervals and local timeouts.
  virtual int64_t NowNanos() const = 0;
  // Wall-clock milliseconds since the Unix epoch: for deadlines that cross process boundaries
  // (a client's absolute deadline). May jump when the host's clock is set.
  virtual int64_t UnixMillis() const = 0;
};

// The process's monotonic clock (CLOCK_MONOTONIC). Not for firmware builds without an OS.
// Only main() functions and tests name it; everything else is handed a Clock.
class SystemClock final : public Clock {
 public:
  int64_t NowNanos() const override;
  int64_t UnixMillis() const override;  // CLOCK_REALTIME.
  static SystemClock& Get();
};

// A clock that moves only when told; its wall clock is its monotonic time plus a fixed
// `unix_offset_nanos`. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_nanos = 0, int64_t unix_offset_nanos = 0)
      : now_(start_nanos), unix_offset_nanos_(unix_offset_nanos) {}
  int64_t NowNanos() const override { return now_.load(std::memory_order_relaxed); }
  int64_t UnixMillis() const override { return (NowNanos() + unix_offset_nanos_) / 1'000'000; }
  void Advance(int64_t nanos) { now_.fetch_add(nanos, std::memory_order_relaxed); }
  void Set(int64_t nanos) { now_.store(nanos, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
  const int64_t unix_offset_nanos_;
};

}  // namespace wafer

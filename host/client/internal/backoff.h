// The waits between JobClient's retries: bounded exponential backoff with jitter. Private to
// host/client.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace wafer::host::internal {

// The n-th delay after a Reset() (n from 0) is drawn uniformly from [b/2, b], where
// b = min(initial_ms * 2^n, max_ms): growing waits, spread so that many clients that lost the
// same daemon do not come back in step. Deterministic for a seed. Not thread-safe.
class Backoff {
 public:
  // REQUIRES: 0 <= initial_ms <= max_ms.
  Backoff(int initial_ms, int max_ms, uint64_t seed)
      : initial_ms_(initial_ms), max_ms_(max_ms), rng_(seed) {}

  // The next delay in milliseconds; the one after it is drawn from a bound twice as large, up
  // to max_ms.
  int NextMs() {
    int64_t bound = initial_ms_;
    for (int i = 0; i < step_ && bound < max_ms_; ++i) bound *= 2;
    bound = std::min<int64_t>(bound, max_ms_);
    if (bound < max_ms_) ++step_;
    std::uniform_int_distribution<int64_t> spread(bound / 2, bound);
    return static_cast<int>(spread(rng_));
  }

  // Starts again from initial_ms (after progress: the daemon answered).
  void Reset() { step_ = 0; }

 private:
  int initial_ms_;
  int max_ms_;
  int step_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace wafer::host::internal

// How a sequence picks its tokens: one definition for the job socket (job.fbs Sampling, decoded
// straight into it), the job record, the Step the host sends (board.fbs SeqSampling), the
// firmware and the simulator's sampler. Header-only, no heap: firmware includes it.
#pragma once

#include <cstdint>

namespace wafer {

struct Sampling {
  float temperature = 0;  // 0: greedy (argmax, lowest id on ties).
  uint32_t top_k = 0;     // 0: off.
  float top_p = 1;        // 1: off.
  uint64_t seed = 0;      // Seeds the sequence's sampler when its slot is reset.

  friend bool operator==(const Sampling&, const Sampling&) = default;
};

}  // namespace wafer

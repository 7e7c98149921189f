// Section (f) of waferd-bench: the scheduling benchmark. A cluster-scheduler simulator replays
// one seeded multi-tenant trace open loop against waferd (shape-only Llama 3.1 8B on a wse3
// board, real-time pacing) under the fair policy and under FIFO, at fractions of the board's
// capacity measured in the same run, and prints what each policy achieved against the targets.
#pragma once

#include <cstdint>
#include <string>

namespace wafer::bench {

struct SchedBenchOptions {
  std::string bin_dir;  // Holds waferd.
  std::string dir;      // Scratch directory for waferd's config and log.
  bool quick = false;   // Shorter runs.
  uint64_t seed = 20240901;
};

// Runs the section; prints everything. Returns false when waferd could not be run at all (a
// policy that waferd refuses is reported in its column, not a failure).
bool RunSchedulingBench(const SchedBenchOptions& options);

}  // namespace wafer::bench

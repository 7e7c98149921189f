// The end of the chaos test (tests/chaos_test.cc): the disruptions it recorded, the checks that
// every accepted job finished exactly once with an exact stream and the undisturbed output, and
// the figures it prints (counts, recovery times per kind of disruption).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tests/chaos_load.h"

namespace wafer::testing {

enum class DisruptionKind { kDaemonKill, kBoardKill, kFault, kRelayDrop, kAbandon };
inline constexpr int kDisruptionKinds = 5;

// One disruption. Its recovery time runs from `at_ns` to the first chunk (or JobFinished)
// delivered to an affected load thread at or after `restored_ns` (the restart of the killed
// process, or `at_ns` itself): a chunk already on its way when a process died is not a recovery.
// Times are in nanoseconds since the run began.
struct Disruption {
  DisruptionKind kind;
  std::string what;
  int64_t at_ns = 0;
  int64_t restored_ns = 0;
  int64_t answered_ns = -1;   // kDaemonKill: when the new waferd answered a status query.
  std::vector<int> affected;  // Load threads with a job in flight that it can touch.
};

// What a chaos run recorded, for its checks and figures. It borrows the run's records, which
// must not change while VerifyChaosRun reads them.
struct ChaosRecord {
  uint64_t seed = 0;
  // Also fail on jobs that ended with a typed error (WAFER_CHAOS_STRICT=1).
  bool strict = false;
  const std::vector<ChaosJob>& jobs;
  const std::vector<ChaosJobResult>& results;  // results[j] is what job j gave.
  const std::vector<Disruption>& disruptions;
  // Per load thread, the times (ns since the run began, ascending) it was delivered something.
  std::span<const std::vector<int64_t>> progress;
  uint32_t client_retries = 0;
  const std::map<std::string, int>& faults;   // Fault kind -> injected.
  const std::map<std::string, int>& refused;  // "kind: CODE" -> refused injections.
  int cross_checks_planned = 0;
  int waferd_starts = 0, sim_starts = 0;
  long long load_window_s = 0, budget_s = 0;
  std::function<void(const std::string&)> note;  // Prints a line of the run's log.
  std::function<double()> elapsed_s;             // Seconds since the run began.
};

// Checks every job's result (each broken rule is a test failure that names the job) and prints
// the run's figures to stdout.
void VerifyChaosRun(const ChaosRecord& record);

}  // namespace wafer::testing

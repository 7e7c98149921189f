// The built-in load generator: plays a cluster scheduler against waferd's job socket, keeping a
// number of jobs in flight over one DEALER, and measures what a user would feel.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "host/wire/messages.h"

namespace wafer::bench {

struct LoadOptions {
  std::string endpoint;
  std::string model;
  uint32_t jobs = 48;
  uint32_t concurrency = 16;     // Jobs in flight at once.
  uint32_t max_tokens = 64;
  std::vector<std::string> prompts = {"def fibonacci(n):"};  // Used round-robin as text...
  bool token_prompts = false;    // ...or, when true, as token ids 1..prompt_tokens.
  uint32_t prompt_tokens = 16;
  int timeout_ms = 60000;        // Bound on silence from the daemon.
  float temperature = 0;         // 0: greedy. Otherwise job i samples with seed i.
  // Called with each chunk of the first job, as it arrives (the demo streams it).
  std::function<void(const host::TokenChunk&)> on_first_job_chunk;
};

struct LoadReport {
  uint32_t accepted = 0;
  uint32_t rejected = 0;
  uint32_t finished_ok = 0;
  uint32_t finished_other = 0;
  uint64_t tokens = 0;
  double wall_s = 0;
  std::vector<double> ttft_s;             // Client-side: submit sent -> first chunk received.
  std::vector<double> device_tokens_per_s;  // Per job: tokens / modeled device time.
  std::vector<double> host_tokens_per_s;    // Per job: tokens after the first / (total - TTFT).
  std::string first_rejection;

  double tokens_per_s() const { return wall_s > 0 ? tokens / wall_s : 0; }
};

// Returns:
//   OK                - `report` holds the run.
//   UNAVAILABLE       - no connection, or the socket failed (the message says how).
//   DEADLINE_EXCEEDED - the daemon stopped answering.
//   DATA_LOSS         - the daemon sent something undecodable.
//   INTERNAL          - the daemon answered with an ErrorReply ("daemon error: CODE: detail").
HostStatus RunLoad(const LoadOptions& options, LoadReport* report);

// The q-quantile (0..1) of `values` (nearest rank); 0 for an empty list.
double Quantile(std::vector<double> values, double q);

}  // namespace wafer::bench

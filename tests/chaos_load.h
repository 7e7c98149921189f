// The load of the chaos test (tests/chaos_test.cc): the jobs of a run, drawn from its seed; what
// the caller of RunWithRetry saw of each, checked chunk by chunk; and undisturbed runs of the
// same jobs, whose outputs the disturbed ones must equal.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "host/client/wafer_client.h"

namespace wafer::testing {

// One job of a chaos run.
struct ChaosJob {
  host::SubmitJob request;
  int board = 0;  // 0: model "tiny" on the wafer-sim process; 1: "tiny_b" on the embedded board.
  bool seeded = false;
  // > 0: the client reads this many chunks, drops its socket, and runs the job again on a new
  // client with the same idempotency key (which must give the same job, streamed from seq 0).
  uint32_t abandon_after = 0;
};

// The `n` jobs of a run from 4 tenants, drawn from `seed` alone so that a replay submits the
// same ones. Their idempotency keys are "chaos-<seed>-<index>".
std::vector<ChaosJob> MakeChaosJobs(uint64_t seed, int n);

// What the caller of RunWithRetry saw of one job. Not thread-safe: it belongs to the thread
// that runs the job, and is read after that thread has ended.
struct ChaosJobResult {
  // Checks a chunk delivered by RunWithRetry against this job's acceptance (`outcome`) and the
  // chunks before it, counts what breaks the stream rules, and appends its tokens.
  void Deliver(const host::TokenChunk& chunk);

  bool started = false;
  Status status;  // RunWithRetry's.
  host::SubmitOutcome outcome;
  host::JobFinished finished;
  bool got_finished = false;
  std::vector<uint32_t> tokens;
  uint32_t chunks = 0;
  // Stream rule violations as delivered (each must stay 0).
  uint32_t gaps = 0, duplicate_chunks = 0, duplicate_tokens = 0, index_errors = 0,
           foreign_chunks = 0;
  std::string client_error;
  // The abandoned first connection, when the job asks for one.
  uint64_t abandoned_job_id = 0;
  std::vector<uint32_t> abandoned_prefix;
  std::vector<uint32_t> reference;  // From the undisturbed reference daemon.
  bool has_reference = false;
  std::vector<uint32_t> cross_check;  // Run again on the chaos daemon after the chaos.
  bool has_cross_check = false;
};

// Whether the job finished with all the tokens it was to have (by length or a stop token).
bool FinishedWhole(const ChaosJobResult& r);

// The retry options of every chaos client: a cut connection is noticed after 1 s of silence, and
// the budget is long enough for a restart and a model reload. `retries`, when given, counts the
// client's retries (RetryEvents).
host::RetryOptions ChaosRetryOptions(uint64_t jitter_seed, std::atomic<uint32_t>* retries);

// Runs the jobs `which` of `jobs` on `endpoint` with 16 clients (client t's jitter seed is
// `jitter_seed` + t), undisturbed, under keys prefixed with `key_prefix`; returns the outputs of
// those that finished whole, by index in `jobs`.
std::map<size_t, std::vector<uint32_t>> RunUndisturbed(const std::string& endpoint,
                                                       const std::string& key_prefix,
                                                       const std::vector<ChaosJob>& jobs,
                                                       const std::vector<size_t>& which,
                                                       uint64_t jitter_seed);

}  // namespace wafer::testing

// One job as waferd knows it: the request as accepted, where it is in its life, and what it has
// streamed. Owned by JobTable; other parts hold pointers only for the length of a call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "host/board/board_types.h"
#include "host/wire/messages.h"

namespace prometheus {
class Counter;
}
namespace wafer::telemetry {
struct ModelSeries;
}

namespace wafer::host {

struct JobRecord {
  // ---- the request, fixed at acceptance ----
  uint64_t id = 0;          // Random, never 0 (JobTable::Add).
  uint64_t accept_seq = 0;  // Acceptance order, kept across restarts: the queue's order.
  std::string model;
  std::string tenant;
  std::string idempotency_key;
  uint8_t priority = 0;
  std::vector<uint32_t> prompt;
  uint32_t max_tokens = 0;
  Sampling sampling;
  std::vector<uint32_t> stop_tokens;
  bool want_text = true;
  uint64_t deadline_unix_ms = 0;  // 0: none. A relative deadline_ms is made absolute here.
  uint32_t ttft_target_ms = 0;    // 0: none.
  // The priority class it runs in (index into scheduler.classes): from priority, capped at
  // its tenant's max_class. Set at acceptance and recovery from the configuration then.
  uint8_t priority_class = 0;
  // What makes a retry with the same idempotency key the same request (RequestDigestOf).
  std::string request_digest;
  int64_t accepted_unix_ms = 0;
  int64_t accepted_ns = 0;  // This process's clock; a recovered job's is translated from Unix.

  // ---- where it is (changed only through JobTable) ----
  std::string peer;  // Routing id of the client that submitted (or last resumed) it.
  JobState state = JobState::kQueued;
  int64_t slot = -1;  // The KV-cache slot the scheduler granted; -1 while queued or finished.
  bool cancel_requested = false;
  FinishReason cancel_reason = FinishReason::kCancelled;  // How a requested cancel ends it.
  std::optional<JobFinished> finished;

  // ---- what it streamed (changed only through JobTable::AppendChunk) ----
  std::vector<uint32_t> output;
  std::vector<uint32_t> chunk_starts;  // Chunk i is output[chunk_starts[i], chunk_starts[i+1]).
  std::vector<std::string> chunk_texts;
  std::string text_pending;  // Bytes of an incomplete UTF-8 character.

  // ---- per-step progress, written by the step planner (transient: a recovered or re-queued
  // job starts its prefill again) ----
  // What the board must read before the next token: the prompt, or after the job lost its
  // board, the prompt plus everything generated so far (recomputed, then decoding resumes).
  std::vector<uint32_t> prefill;
  uint32_t prefill_fed = 0;  // Tokens of `prefill` already sent to the board.
  bool in_flight = false;    // Part of the step the board is running...
  uint64_t step_serial = 0;  // ...this one (a re-queued job's old step may still come back).

  // ---- poison-job blame (transient) ----
  // The job was in a Step its board went down on: it is a suspect, and runs in Steps of its own
  // until its output is longer than this (past the point of the crash). A suspect whose own
  // Step takes a board down again is the cause, and fails (FinishReason kPoison).
  std::optional<uint32_t> suspect_until_output;
  bool Suspect() const {
    return suspect_until_output.has_value() && output.size() <= *suspect_until_output;
  }

  // ---- timings and accounting ----
  int64_t first_step_ns = 0;
  int64_t first_token_ns = 0;
  int64_t last_token_ns = 0;
  int64_t device_ns = 0;
  telemetry::ModelSeries* series = nullptr;  // The model's metrics; registered once.
  // Its tenant's wafer_tenant_tokens_served_total{kind="output"}, found when it is granted.
  prometheus::Counter* tenant_output_tokens = nullptr;

  // ---- scheduling (transient) ----
  int64_t granted_ns = 0;          // When it was (last) granted its slot.
  bool preempt_requested = false;  // Yields its slot when the Step it is in returns.
};

}  // namespace wafer::host

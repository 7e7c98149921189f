// The step loop's records of jobs, models and boards. Private to host/daemon.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host/daemon/daemon.h"

namespace wafer::host {

struct Daemon::Job {
  uint64_t id = 0;
  std::string peer;  // Routing id of the client that submitted (or last resumed) it.
  std::string model;
  std::string tenant;
  std::string idempotency_key;
  std::vector<uint32_t> prompt;
  uint32_t max_tokens = 0;
  SeqSampling sampling;
  std::vector<uint32_t> stop_tokens;
  bool want_text = true;
  uint64_t deadline_unix_ms = 0;

  JobState state = JobState::kQueued;
  int64_t slot = -1;
  // What the board must read before the next token: the prompt, or after the job lost its
  // board, the prompt plus everything generated so far (recomputed, then decoding resumes).
  std::vector<uint32_t> prefill;
  uint32_t prefill_fed = 0;  // Tokens of `prefill` already sent to the board.
  bool in_flight = false;   // Part of the step the board is running...
  uint64_t step_serial = 0;  // ...this one (a re-queued job's old step may still come back).
  bool cancel_requested = false;

  std::vector<uint32_t> output;
  std::vector<uint32_t> chunk_starts;  // Chunk i is output[chunk_starts[i], chunk_starts[i+1]).
  std::vector<std::string> chunk_texts;
  std::string text_pending;  // Bytes of an incomplete UTF-8 character.

  int64_t accepted_ns = 0;
  int64_t first_step_ns = 0;
  int64_t first_token_ns = 0;
  int64_t last_token_ns = 0;
  int64_t device_ns = 0;
  std::optional<JobFinished> finished;
  telemetry::ModelSeries* series = nullptr;  // The model's metrics; registered once.
};

struct Daemon::Model {
  std::string name;
  std::string path;
  uint32_t board = 0;
  uint32_t model_id = 0;
  ModelState state = ModelState::kLoading;
  ModelArch arch;
  std::shared_ptr<const TextCodec> text;
  uint64_t parameters = 0;
  uint64_t weight_bytes = 0;
  uint32_t slots = 0;
  uint32_t context_length = 0;
  bool shape_only = false;
  std::vector<uint32_t> free_slots;
  std::deque<uint64_t> running;  // Jobs holding a slot, in step order.
  std::string unload_peer;       // Who asked for the unload in progress.
  uint64_t unload_tag = 0;
  bool unload_sent = false;  // UnloadWork went to the worker once running jobs ended.
};

struct Daemon::Board {
  uint32_t index = 0;
  BoardConfig config;
  std::unique_ptr<BoardWorker> worker;
  zmq::socket_t channel;  // The step loop's end of the worker channel.
  BoardState state = BoardState::kOffline;
  std::string detail;
  BoardIdentity identity;
  BoardTelemetry telemetry;
  uint32_t steps_in_flight = 0;  // Sent to the worker, StepDone not yet back.
  bool resetting = false;         // A ResetWork is under way.
  size_t next_model = 0;  // Round-robin position over this board's models.
  uint64_t steps = 0;
};

}  // namespace wafer::host

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
  // The boards it runs on, in pipeline order: boards[0] embeds tokens and plans the steps, the
  // last one samples. One board for a model that fits a wafer.
  std::vector<uint32_t> boards;
  RowBand rows;  // The band of rows it holds on each of its boards (rows == 0: none yet).
  // What it was staged from, kept while it is loaded so that a PE fault can be repaired by
  // re-staging only the tensors lost (the checkpoint stays mapped, not read).
  std::shared_ptr<const PreparedModel> prepared;
  bool repairing = false;  // A RepairWork is out (state kLoading meanwhile).
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
  bool unload_sent = false;  // UnloadWork went to the workers once running jobs ended.
  uint32_t unloads_pending = 0;  // Boards that have not answered the unload yet.
  Status unload_status;          // The first board's failure, if any.
  std::string unload_detail;

  // The load under way (state kLoading).
  struct Loading {
    LoadRequest request;
    bool reload = false;             // After a loss: waits for its boards rather than failing.
    uint32_t replaces_model_id = 0;  // The lost instance, freed before staging.
    bool started = false;            // PrepareWork sent.
    int64_t start_ns = 0;
    std::shared_ptr<const PreparedModel> prepared;
    std::vector<uint64_t> stage_bytes_done;
    uint32_t stages_pending = 0;
    Status status;  // The first stage's failure.
    std::string detail;
  };
  Loading loading;

  bool pipelined() const { return boards.size() > 1; }
};

// A step of a pipelined model on its way through the boards. Every stage runs the same
// sequences (each board holds its layers' KV cache for the same slots); hidden states go from
// one stage's results into the next stage's inputs, and only the last stage samples.
struct Daemon::Chain {
  uint32_t stage = 0;           // The board (index into Model::boards) running it now.
  std::vector<SeqStep> seqs;    // As planned (generate as the last stage must run it).
  DeviceTime time;              // Summed over the stages done so far.
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
  bool heard = false;      // A BoardUpdate arrived: `state` is the worker's, not the default.
  bool preparing = false;  // A load spanning this board is being planned: its rows are unknown.
};

}  // namespace wafer::host

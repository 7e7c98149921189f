// What waferd's step loop and a board worker thread hand each other (see inproc_channel.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"
#include "host/board/board_types.h"
#include "host/daemon/model_source.h"

namespace wafer::host {

// ---- step loop -> worker ----

struct StepWork {
  uint64_t serial = 0;  // Unique per daemon; StepDone echoes it.
  uint32_t model_id = 0;
  std::vector<SeqStep> seqs;
  std::vector<uint64_t> job_ids;  // Parallel to seqs; returned untouched.
};

struct LoadWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;  // Routing id of the waferctl that asked; empty for config loads.
  std::string name;
  std::string path;
  uint32_t model_id = 0;
  uint32_t slots = 0;
  uint32_t context_length = 0;  // 0: the model's maximum.
  uint32_t replaces_model_id = 0;  // Non-zero on a reload: unloaded first (NOT_FOUND is fine).
};

struct UnloadWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  std::string name;
  uint32_t model_id = 0;
};

struct ResetWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
};

struct LogsWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  uint64_t from_sequence = 0;
};

struct FaultWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  BoardFaultInjection fault;
};

struct GeometryWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
};

using WorkerRequest =
    std::variant<StepWork, LoadWork, UnloadWork, ResetWork, LogsWork, FaultWork, GeometryWork>;

// ---- worker -> step loop ----

struct StepDone {
  uint64_t serial = 0;
  uint32_t model_id = 0;
  std::vector<uint64_t> job_ids;
  Status status;  // Not OK: the whole step failed (see detail); outcome is empty.
  std::string detail;
  StepOutcome outcome;
};

struct LoadProgressEvent {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double bytes_per_second = 0;
  std::string phase;
};

struct LoadDone {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  std::string name;
  uint32_t model_id = 0;
  Status status;
  std::string detail;
  double elapsed_s = 0;
  // On success: what the step loop needs to serve the model.
  ModelArch arch;
  std::shared_ptr<const TextCodec> text;  // Null when the model has no tokenizer.
  uint64_t parameters = 0;
  uint64_t weight_bytes = 0;
  uint32_t slots = 0;
  uint32_t context_length = 0;
  bool shape_only = false;
};

struct OperationDone {
  enum class Kind : uint8_t { kUnload, kReset, kFault };
  Kind kind = Kind::kUnload;
  uint64_t admin_tag = 0;
  std::string admin_peer;
  std::string name;  // Model name for unloads.
  Status status;
  std::string detail;
  double elapsed_s = 0;
};

// The board's state and latest readings, sent when the state changes and about once a second.
struct BoardUpdate {
  uint32_t board = 0;
  BoardBootState boot_state = BoardBootState::kPowerOn;
  bool online = false;
  std::string detail;
  BoardIdentity identity;
  BoardTelemetry telemetry;
  bool has_telemetry = false;
};

struct LogsDone {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  Status status;
  std::string detail;
  BoardErrorLog log;
};

struct GeometryDone {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  Status status;
  std::string detail;
  BoardIdentity identity;
  BoardHarvestMap harvest;
  BoardTelemetry telemetry;
};

using WorkerEvent = std::variant<StepDone, LoadProgressEvent, LoadDone, OperationDone, BoardUpdate,
                                 LogsDone, GeometryDone>;

}  // namespace wafer::host

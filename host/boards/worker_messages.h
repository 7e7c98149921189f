// What waferd's step loop and a board worker thread hand each other (common/net/owned_channel.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"
#include "host/boards/board_diagnostics.h"
#include "host/board/board_types.h"
#include "host/loader/prepared_model.h"
#include "host/loader/restage.h"
#include "host/placement/placement_planner.h"
#include "host/placement/row_gaps.h"

namespace wafer::host {

// ---- step loop -> worker ----

struct StepWork {
  uint64_t serial = 0;  // Unique per daemon; StepDone echoes it.
  uint32_t model_id = 0;
  std::vector<SeqStep> seqs;
  std::vector<uint64_t> job_ids;  // Parallel to seqs; returned untouched.
};

// To each of the model's boards: stage `stage` of `model` (the plan's board `stage`) and commit
// it. `replaces_model_id`, when not 0, is unloaded first (a reload; NOT_FOUND is fine).
struct StageLoadWork {
  uint32_t model_id = 0;
  uint32_t stage = 0;
  uint32_t replaces_model_id = 0;
  std::shared_ptr<const PreparedModel> model;
  NextStage next_stage;  // Where this stage hands its hidden states on (empty: nowhere).
};

struct UnloadWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  std::string name;
  uint32_t model_id = 0;
  // False: clean-up of a failed load or a lost model; the worker sends no OperationDone.
  bool report = true;
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

// To the board holding stage `stage` of a model whose step failed DATA_LOSS (a PE under its
// weights failed and was remapped): rewrite the tensors the board's fault reports list, then
// commit (host/loader/restage.h). The answer is a RepairDone.
struct RepairWork {
  uint32_t model_id = 0;
  uint32_t stage = 0;
  std::shared_ptr<const PreparedModel> model;
};

// Runs the diagnostics of `level` (host/boards/board_diagnostics.h). For levels 2 and 3 the
// step loop drained the board first. Answered by DiagProgressEvents, then a DiagDone.
struct DiagWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  uint32_t level = 1;
  DiagLimits limits;
};

// Reads both firmware slots; answered by a FirmwareInfoDone.
struct FirmwareInfoWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
};

// Writes `image` into the slot that is not running (Begin, chunks, Commit: the board checks
// CRC and signature). Answered by FirmwareProgressEvents, then an OperationDone kFirmware.
struct FirmwareUpdateWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  std::vector<std::byte> image;
  std::vector<std::byte> signature;
};

// Asks the board to boot its other slot at the next reset; answered by an OperationDone
// kFirmware.
struct FirmwareRollbackWork {
  uint64_t admin_tag = 0;
  std::string admin_peer;
};

using WorkerRequest = std::variant<StepWork, StageLoadWork, UnloadWork, ResetWork,
                                   LogsWork, FaultWork, GeometryWork, RepairWork, DiagWork,
                                   FirmwareInfoWork, FirmwareUpdateWork, FirmwareRollbackWork>;

// ---- worker -> step loop ----

struct StepDone {
  uint64_t serial = 0;
  uint32_t model_id = 0;
  std::vector<uint64_t> job_ids;
  Status status;  // Not OK: the whole step failed (see detail); outcome is empty.
  std::string detail;
  StepOutcome outcome;
  // The StepWork's sequences, handed back so that the step loop reuses their buffers (its
  // allocations are then neither made per step nor freed on the worker thread). Not read.
  std::vector<SeqStep> seqs;
};

// Bytes of one stage written so far.
struct LoadProgressEvent {
  uint32_t model_id = 0;
  uint32_t stage = 0;
  uint64_t bytes_done = 0;
};

// One stage staged and committed, or why not (nothing of it stays on the board).
struct LoadDone {
  uint32_t model_id = 0;
  uint32_t stage = 0;
  Status status;
  std::string detail;
};

struct OperationDone {
  enum class Kind : uint8_t { kUnload, kReset, kFault, kFirmware };
  Kind kind = Kind::kUnload;
  uint64_t admin_tag = 0;
  std::string admin_peer;
  std::string name;  // Model name for unloads.
  Status status;
  std::string detail;
  double elapsed_s = 0;
  uint32_t model_id = 0;  // The instance unloaded (unloads only).
};

// The board's state and latest readings, sent when the state changes and about once a second.
struct BoardUpdate {
  uint32_t board = 0;
  BoardBootState boot_state = BoardBootState::kPowerOn;
  bool online = false;
  std::string detail;
  BoardIdentity identity;
  BoardTelemetry telemetry;
  // `telemetry` holds a reading: in every report of a ready board, and in the report of a board
  // found out of the ready state (its final reading: a thermal trip shows there).
  bool has_telemetry = false;
  // kImageRolledBack records seen in the firmware's log since the worker started (read after
  // each boot).
  uint64_t firmware_rollbacks = 0;
  // Firmware heartbeats missed since the worker started (each takes the board offline; the
  // worker then resets it).
  uint64_t heartbeat_misses = 0;
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

struct RepairDone {
  uint32_t model_id = 0;
  uint32_t stage = 0;
  Status status;
  std::string detail;
  RestageReport report;
  double elapsed_s = 0;
};

struct DiagProgressEvent {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  DiagProgress progress;
};

struct DiagDone {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  DiagReport report;
};

struct FirmwareInfoDone {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  Status status;
  std::string detail;
  std::string running_version;  // As Identify reports it.
  BoardFirmwareSlots slots;
};

// Bytes of a firmware image written to the board so far.
struct FirmwareProgressEvent {
  uint64_t admin_tag = 0;
  std::string admin_peer;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  double elapsed_s = 0;
};

using WorkerEvent = std::variant<StepDone, LoadProgressEvent, LoadDone, OperationDone,
                                 BoardUpdate, LogsDone, GeometryDone, RepairDone,
                                 DiagProgressEvent, DiagDone, FirmwareInfoDone,
                                 FirmwareProgressEvent>;

}  // namespace wafer::host

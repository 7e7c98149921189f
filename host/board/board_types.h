// Plain structs for the board link, as the host sees them. Only host/board/board_codec.cc
// includes the generated board schema; everything else in host/ uses these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/device_time.h"
#include "common/model_arch.h"
#include "common/model_stage.h"
#include "common/sampling.h"
#include "common/status.h"
#include "common/tensor_types.h"

namespace wafer::host {

// The firmware's boot state (board.fbs BootState). A boot goes PowerOn, SelfTest, VerifyImage
// (the running firmware image's CRC and signature), Remap (manufacturing defects), Ready; a failed
// stage or a fatal fault ends in Faulted, and Reset returns to PowerOn.
enum class BoardBootState : uint8_t {
  kPowerOn,
  kSelfTest,
  kVerifyImage,
  kRemap,
  kReady,
  kFaulted,
};

inline const char* BoardBootStateName(BoardBootState state) {
  switch (state) {
    case BoardBootState::kPowerOn: return "power_on";
    case BoardBootState::kSelfTest: return "self_test";
    case BoardBootState::kVerifyImage: return "verify_image";
    case BoardBootState::kRemap: return "remap";
    case BoardBootState::kReady: return "ready";
    case BoardBootState::kFaulted: return "faulted";
  }
  return "unknown";
}

struct BoardIdentity {
  std::string board_id;
  std::string preset;
  std::string firmware_version;
  BoardBootState state = BoardBootState::kPowerOn;
  uint64_t physical_pes = 0;
  uint32_t fabric_width = 0;
  uint32_t fabric_height = 0;
  uint32_t sram_per_pe = 0;
  double clock_hz = 0;
  uint32_t max_slots = 0;
  uint32_t max_chunk_bytes = 0;
  uint32_t active_firmware_slot = 0;  // 0 or 1.
  // The most hidden-state values (float32) one Step may carry in, and one StepReply out.
  uint32_t max_step_hidden_values = 0;
  // The largest frame the board receives, and the most sequences and generated tokens one Step
  // may carry (0: a board older than protocol minor 2).
  uint32_t max_frame_bytes = 0;
  uint32_t max_step_seqs = 0;
  uint32_t max_step_tokens = 0;
  // WriteWeights may send its bytes as a second frame, without copying them (protocol minor 7).
  bool attached_weights = false;

  // The Step limits with a board older than protocol minor 2 answered by its firmware's
  // (1.5 MiB frames, 256 sequences, 16,384 generated tokens).
  uint32_t step_frame_bytes() const { return max_frame_bytes != 0 ? max_frame_bytes : 3u << 19; }
  uint32_t step_seqs() const { return max_step_seqs != 0 ? max_step_seqs : 256u; }
  uint32_t step_tokens() const { return max_step_tokens != 0 ? max_step_tokens : 16384u; }
  // Geometry (see board.fbs IdentifyReply): physical >= healthy >= usable.
  uint64_t healthy_pes = 0;
  uint64_t spare_pes = 0;
  uint64_t failed_pes = 0;
  uint64_t usable_pes = 0;  // fabric_width * fabric_height.
  uint32_t physical_rows = 0;
  uint32_t physical_cols = 0;
  uint32_t spare_cols_per_row = 0;
  bool harvested = false;  // False before the first Boot: the geometry is nominal.
};

// The fabric's harvesting map (ReadGeometry).
struct BoardHarvestMap {
  uint32_t physical_rows = 0;
  uint32_t physical_cols = 0;
  uint32_t spare_cols_per_row = 0;
  uint32_t usable_width = 0;
  uint32_t usable_height = 0;
  std::vector<uint16_t> row_failed;     // Failed PEs per physical row.
  std::vector<uint32_t> dropped_rows;   // Physical rows left out of the usable rectangle.
  uint64_t runtime_remaps = 0;
  bool harvested = false;
};

// One firmware slot (board.fbs FirmwareSlot).
struct BoardFirmwareSlot {
  uint32_t slot = 0;
  bool valid = false;  // The boot control records a checked image here.
  uint64_t size = 0;
  uint32_t crc32c = 0;
  bool has_signature = false;
  std::vector<uint8_t> signature;  // 64 bytes, or empty.
  std::string version;             // The image header's "waferfw-..." word, or empty.
};

// Both firmware slots and the boot control (ReadFirmwareSlots).
struct BoardFirmwareSlots {
  uint32_t active_slot = 0;
  uint32_t fallback_slot = 0;
  bool pending = false;  // `pending_slot` boots at the next reset, on trial.
  uint32_t pending_slot = 0;
  bool trial = false;  // The running image has not passed a boot yet.
  bool signing_key = false;
  std::vector<BoardFirmwareSlot> slots;
};

// Matches board.fbs FaultKind.
enum class BoardFaultKind : uint8_t {
  kNone, kPeStop, kEccCorrectable, kEccUncorrectable, kLinkCrc, kThermalRunaway, kPowerCap,
  kFirmwareHang, kProcessCrash, kSramStuckBit, kFabricLink,
};

// A fault to inject on a simulated board (see board.fbs InjectFault for each kind's fields).
struct BoardFaultInjection {
  BoardFaultKind kind = BoardFaultKind::kNone;
  uint32_t region = 0;
  uint32_t row = 0;
  uint32_t pe = 0;
  double value = 0;
};

// A runtime PE fault and the tensors the host must re-stage (ReadFaults).
struct BoardFaultReport {
  uint64_t sequence = 0;
  int64_t timestamp_ns = 0;
  BoardFaultKind kind = BoardFaultKind::kNone;
  uint32_t row = 0;
  uint32_t pe = 0;
  bool remapped = false;
  uint32_t model_id = 0;
  std::vector<uint32_t> restage_tensors;
  bool kv_cache_lost = false;
};

struct BoardFaults {
  std::vector<BoardFaultReport> faults;  // Oldest first.
  uint64_t next_sequence = 0;
};

// Matches board.fbs DiagTest: the firmware's built-in self-tests.
enum class BoardDiagTest : uint8_t { kNone, kSramUnused, kSramAll, kFabricLinks, kKnownAnswer };

// One failing unit a built-in self-test found (board.fbs DiagFinding).
struct BoardDiagFinding {
  uint32_t row = 0;
  uint32_t pe = 0;
  uint32_t region = 0;
  uint64_t detail = 0;
  bool retired = false;
  bool remapped = false;
};

// Answer to RunDiagnostic (board.fbs DiagnosticReply).
struct BoardDiagnostic {
  BoardDiagTest test = BoardDiagTest::kNone;
  uint32_t first_row = 0;
  uint32_t row_count = 0;  // After clipping to the board.
  uint64_t units_tested = 0;
  uint64_t failures = 0;
  std::vector<BoardDiagFinding> findings;  // The first ones (at most 64).
  int64_t device_ns = 0;
};

// A rectangle of PEs in the usable fabric's coordinates.
struct PeRect {
  uint32_t x = 0;  // Column of the top-left PE.
  uint32_t y = 0;  // Row of the top-left PE.
  uint32_t w = 0;
  uint32_t h = 0;
  uint64_t pes() const { return uint64_t{w} * h; }
  bool operator==(const PeRect&) const = default;
};

// KV-cache space for one decoder layer: `bytes_per_pe` on every PE of `rect`.
struct KvRegion {
  uint32_t layer = 0;
  PeRect rect;
  uint64_t bytes_per_pe = 0;
};

struct TensorDesc {
  std::string name;
  TensorRole role = TensorRole::kEmbedding;
  uint32_t layer = 0;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  uint64_t byte_size = 0;
  PeRect placement;  // Set by the placement planner before BeginModel.
};

// Where a stage hands its hidden states on (board.fbs NextStage): with it, a Step sent to the
// first stage runs through every board of the pipeline.
struct NextStage {
  std::string endpoint;  // Empty: none (the last stage, or the host relays between stages).
  uint32_t stages = 0;
  uint32_t timeout_ms = 0;
};

// Everything BeginModel tells the board.
struct ModelManifest {
  uint32_t model_id = 0;
  std::string name;
  ModelArch arch;
  std::vector<TensorDesc> tensors;
  std::vector<KvRegion> kv_regions;  // One per decoder layer (placement planner).
  uint32_t slots = 0;
  uint32_t context_length = 0;
  bool shape_only = false;
  ModelStage stage;
  NextStage next_stage;
};

// One sequence's part of a Step (see board.fbs SeqStep).
struct SeqStep {
  uint32_t slot = 0;
  bool reset = false;
  std::vector<uint32_t> input_tokens;
  uint32_t generate = 0;
  Sampling sampling;
  uint32_t sampled_before = 0;  // Set per step by the planner: tokens the job already has.
  std::vector<uint32_t> stop_tokens;
  // A stage without the embedding: the previous stage's hidden states for every input token,
  // input_tokens.size() * hidden_size floats, in token order. Empty for a shape-only model.
  // Such a stage generates at most 1 token per Step (it cannot feed its token back itself), and a
  // stage without the head generates none.
  std::vector<float> hidden_in;
};

struct SeqResult {
  uint32_t slot = 0;
  std::vector<uint32_t> tokens;
  // OK, or why the sequence failed (RESOURCE_EXHAUSTED when its context is full).
  Status status;
  uint32_t context_tokens = 0;
  // A stage without the head: its last layer's output for every input token (for the next
  // stage's hidden_in). Empty for a shape-only model.
  std::vector<float> hidden_out;
};

// What a Step did across the boards of a pipeline (board.fbs PipelineReport).
struct PipelineReport {
  bool present = false;
  uint32_t passes = 0;
  uint64_t hidden_values = 0;
  std::vector<int64_t> stage_busy_ns;  // By stage, 0 the board that answered.
  uint32_t failed_stage = 0;           // 0: none; then `results` is empty.
  Status failed;                       // Why that stage failed.
  std::string failed_detail;
};

struct StepOutcome {
  std::vector<SeqResult> results;  // In the order of the Step's seqs.
  DeviceTime device_time;
  PipelineReport pipeline;
};

struct BoardTelemetry {
  BoardBootState state = BoardBootState::kPowerOn;
  std::vector<float> region_temp_c;
  float power_w = 0;
  double clock_hz = 0;
  float coolant_in_c = 0;
  float coolant_out_c = 0;
  uint64_t sram_used_bytes = 0;
  uint64_t sram_total_bytes = 0;
  uint64_t steps = 0;
  uint64_t ecc_correctable = 0;
  uint64_t ecc_uncorrectable = 0;
  std::vector<double> region_clock_hz;  // 0: stopped.
  float core_power_w = 0;
  float sram_power_w = 0;
  float io_power_w = 0;
  float coolant_flow_kg_s = 0;
  float power_cap_w = 0;  // 0: none.
  bool throttled = false;
  bool thermal_trip = false;
  uint64_t link_crc_errors = 0;
  uint64_t runtime_failed_pes = 0;
};

// board.fbs LogCode kImageRolledBack: a trial firmware image failed; the previous slot runs.
inline constexpr uint16_t kBoardLogImageRolledBack = 16;

// Matches board.fbs LogSeverity.
enum class BoardLogSeverity : uint8_t { kInfo, kWarning, kError, kFatal };

// One firmware error-log record. `code` is a board.fbs LogCode value (BoardLogCodeName names it);
// a newer firmware may send codes this host does not know.
struct BoardLogRecord {
  uint64_t sequence = 0;
  int64_t timestamp_ns = 0;  // The board's clock.
  BoardLogSeverity severity = BoardLogSeverity::kInfo;
  uint16_t code = 0;
  std::vector<uint64_t> args;
};

// One page of the firmware's error log.
struct BoardErrorLog {
  std::vector<BoardLogRecord> records;  // Oldest first.
  uint64_t next_sequence = 0;           // Pass to the next ReadErrorLog.
  uint64_t dropped_count = 0;           // Records from `from_sequence` on that were overwritten.
  uint64_t overwritten_total = 0;       // Overwritten since the board powered up.
};

}  // namespace wafer::host

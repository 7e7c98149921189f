// Decoded board-link commands and the replies the firmware core produces, as plain structs.
// firmware/link/ translates between these and board.fbs; the core never sees FlatBuffers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"
#include "firmware/error_log.h"
#include "firmware/hal/firmware_flash.h"
#include "firmware/hal/signature_verifier.h"
#include "firmware/hal/wafer.h"

namespace wafer::fw {

inline constexpr uint16_t kProtocolMajor = 1;
// Minor 1: pipeline stages (BeginModel.stage, SeqStep.hidden_in, SeqResult.hidden_out,
// IdentifyReply.max_step_hidden_values). Minor 2: IdentifyReply reports the Step limits
// (max_frame_bytes, max_step_seqs, max_step_tokens). Minor 3: SeqSampling.sampled_before.
// Minor 4: diagnostics (RunDiagnostic, DiagnosticReply), FaultKind kSramStuckBit and
// kFabricLink, LogCode kDiagnosticRun. Minor 5: boards hand hidden states to each other
// (BeginModel.next_stage, Step.from_stage, StepReply.pipeline). Minor 6: firmware slots
// (ReadFirmwareSlots, FirmwareSlotsReply) and RollbackFirmware, LogCode kRollbackRequested.
// Minor 7: a WriteWeights chunk may travel as the message's second frame
// (WriteWeights.attached_size, IdentifyReply.attached_weights).
inline constexpr uint16_t kProtocolMinor = 7;
inline constexpr const char* kFirmwareVersion = "waferfw-1.0.0";

// Limits the firmware enforces on every frame.
inline constexpr size_t kMaxChunkBytes = 1u << 20;
inline constexpr size_t kMaxFrameBytes = kMaxChunkBytes + (512u << 10);
inline constexpr size_t kMaxTensors = 2048;
// KV regions of one BeginModel: one per decoder layer for the largest models, with room.
inline constexpr size_t kMaxKvRegions = 512;
inline constexpr size_t kMaxModels = 8;
inline constexpr size_t kMaxSeqsPerStep = 256;
inline constexpr size_t kMaxStepTokens = 16384;  // Sum of `generate` over a step's seqs.
// Hidden-state values (float32) one Step may carry in (SeqStep.hidden_in, summed over its seqs)
// and one StepReply out (SeqResult.hidden_out): 1 MB, a prefill chunk of 64 tokens of a
// 4096-wide model crossing a pipeline hop. Reported in Identify.
inline constexpr size_t kMaxStepHiddenValues = size_t{1} << 18;
// Generous bytes per sequence of a Step or StepReply beyond its vectors' contents (its table,
// sampling, vector lengths and padding), and per frame (envelope, vtables).
inline constexpr size_t kStepSeqOverheadBytes = 256;
inline constexpr size_t kStepFrameOverheadBytes = 4096;
// A Step (or StepReply) as large as these limits allow: every hidden value, kMaxStepTokens token
// ids in and as many stop tokens (or generated tokens), and kMaxSeqsPerStep sequences. It must
// fit one frame, or a step within every other limit could not be sent.
inline constexpr size_t kMaxStepFrameBytes =
    kMaxStepHiddenValues * sizeof(float) + 2 * kMaxStepTokens * sizeof(uint32_t) +
    kMaxSeqsPerStep * kStepSeqOverheadBytes + kStepFrameOverheadBytes;
static_assert(kMaxStepFrameBytes <= kMaxFrameBytes, "a maximal Step must fit one frame");
// Pipelines over boards: at most this many stages, and a next stage's endpoint of at most this
// many bytes.
inline constexpr uint32_t kMaxPipelineStages = 16;
inline constexpr size_t kMaxEndpointBytes = 255;

// Same values as board.fbs BootState (new states are appended there, so they come last here too;
// the boot order is PowerOn, SelfTest, VerifyImage, Remap, Ready).
enum class BootState : uint8_t { kPowerOn, kSelfTest, kReady, kFaulted, kVerifyImage, kRemap };

enum class CommandKind : uint8_t {
  kIdentify,
  kBoot,
  kBeginModel,
  kWriteWeights,
  kCommitModel,
  kUnloadModel,
  kStep,
  kReadTelemetry,
  kReset,
  kHeartbeat,
  kReadErrorLog,
  kBeginFirmwareImage,
  kWriteFirmwareChunk,
  kCommitFirmwareImage,
  kReadGeometry,
  kInjectFault,
  kReadFaults,
  kRunDiagnostic,
  kReadFirmwareSlots,
  kRollbackFirmware,
};

// Same values as board.fbs DiagTest.
enum class DiagTest : uint8_t { kNone, kSramUnused, kSramAll, kFabricLinks, kKnownAnswer };

// kRunDiagnostic: rows [first_row, first_row + row_count) of the usable rectangle, or for
// kKnownAnswer die regions.
struct DiagnosticArgs {
  DiagTest test = DiagTest::kNone;
  uint32_t first_row = 0;
  uint32_t row_count = 0;
};

struct WriteWeightsArgs {
  uint32_t model_id = 0;
  uint32_t tensor_index = 0;
  uint64_t offset = 0;
  std::span<const std::byte> data;
  uint32_t crc32c = 0;
};

struct FirmwareImageArgs {
  uint32_t slot = 0;
  uint64_t size = 0;
  uint32_t crc32c = 0;                // Of the whole image.
  std::span<const std::byte> signature;  // kSignatureBytes (the decoder checks).
};

struct FirmwareChunkArgs {
  uint32_t slot = 0;
  uint64_t offset = 0;
  std::span<const std::byte> data;
  uint32_t crc32c = 0;  // Of `data`.
};

// One command. Only the fields of `kind` are meaningful; spans point into the received frame
// and the decoder's storage and live until the next frame is decoded.
struct Command {
  CommandKind kind = CommandKind::kIdentify;
  uint64_t command_id = 0;
  hal::ModelManifest manifest;  // kBeginModel.
  WriteWeightsArgs write;       // kWriteWeights.
  uint32_t model_id = 0;        // kCommitModel, kUnloadModel.
  hal::StepRequest step;        // kStep.
  int64_t heartbeat_sent_ns = 0;
  uint64_t log_from_sequence = 0;    // kReadErrorLog.
  uint32_t log_max_records = 0;      // kReadErrorLog; 0: as many as fit a reply.
  FirmwareImageArgs image;           // kBeginFirmwareImage.
  FirmwareChunkArgs image_chunk;     // kWriteFirmwareChunk.
  uint32_t image_slot = 0;           // kCommitFirmwareImage.
  hal::FaultSpec fault;              // kInjectFault.
  uint64_t faults_from_sequence = 0;  // kReadFaults.
  DiagnosticArgs diagnostic;          // kRunDiagnostic.
};

// Frame-level failures, answered with an ErrorReply (same meaning as wire ErrorCode values).
enum class LinkError : uint8_t {
  kMalformedMessage,
  kUnsupportedVersion,
  kWrongMessageType,
  kInvalidArgument,
  kFrameCrc,  // The link CRC failed; the frame was not decoded (wire kDataLoss).
};

enum class ReplyKind : uint8_t {
  kIdentify, kBoot, kAck, kStep, kTelemetry, kHeartbeat, kError, kErrorLog, kGeometry, kFaults,
  kDiagnostic, kFirmwareSlots,
};

// Fabric geometry as the firmware harvested it (nominal before the first self-test).
struct GeometrySummary {
  uint64_t physical_pes = 0;
  uint64_t healthy_pes = 0;
  uint64_t spare_pes = 0;  // Healthy PEs outside the usable rectangle.
  uint64_t failed_pes = 0;
  uint64_t usable_pes = 0;
  uint32_t physical_rows = 0;
  uint32_t physical_cols = 0;
  uint32_t spare_cols = 0;
  uint32_t usable_width = 0;
  uint32_t usable_height = 0;
  uint64_t runtime_remaps = 0;
  uint64_t runtime_failed = 0;
  bool harvested = false;
};

inline constexpr size_t kMaxFaultReports = 32;
inline constexpr size_t kMaxRestageTensors = 64;

// One runtime PE fault (board.fbs FaultReport).
struct FaultRecord {
  uint64_t sequence = 0;
  int64_t timestamp_ns = 0;
  hal::FaultKind kind = hal::FaultKind::kPeStop;
  uint32_t row = 0;
  uint32_t pe = 0;
  bool remapped = false;
  uint32_t model_id = 0;
  bool kv_cache_lost = false;
  uint32_t tensor_count = 0;  // Entries of `tensors` in use.
  std::array<uint32_t, kMaxRestageTensors> tensors{};
};

// Findings one DiagnosticReply carries at most (board.fbs DiagnosticReply.findings).
inline constexpr size_t kMaxDiagFindings = 64;

// One failing unit of a diagnostic (board.fbs DiagFinding).
struct DiagFinding {
  uint32_t row = 0;  // kKnownAnswer: 0.
  uint32_t pe = 0;   // kKnownAnswer: 0.
  uint32_t region = 0;
  uint64_t detail = 0;
  bool retired = false;
  bool remapped = false;
};

// What a diagnostic covered (board.fbs DiagnosticReply without its findings).
struct DiagnosticSummary {
  DiagTest test = DiagTest::kNone;
  uint32_t first_row = 0;
  uint32_t row_count = 0;  // Rows (regions) tested after clipping.
  uint64_t units_tested = 0;
  uint64_t failures = 0;
  int64_t device_ns = 0;
};

// The longest image version a slot description carries (FirmwareSlot.version).
inline constexpr size_t kMaxImageVersionBytes = 32;

// One firmware slot (board.fbs FirmwareSlot).
struct FirmwareSlotSummary {
  bool valid = false;
  uint64_t size = 0;
  uint32_t crc32c = 0;
  bool has_signature = false;
  std::array<std::byte, hal::kSignatureBytes> signature{};
  std::array<char, kMaxImageVersionBytes> version{};
  uint32_t version_length = 0;  // 0: the image names no version.
};

// Both slots and the boot control (board.fbs FirmwareSlotsReply).
struct FirmwareSlotsSummary {
  uint32_t active_slot = 0;
  uint32_t fallback_slot = 0;
  bool pending = false;
  uint32_t pending_slot = 0;
  bool trial = false;
  bool signing_key = false;
  std::array<FirmwareSlotSummary, hal::kFirmwareSlots> slots{};
};

// One reply. `detail` is a static string. Spans point into the command processor and stay valid
// until it handles the next command.
// What a Step did across the boards of a pipeline (board.fbs PipelineReport).
struct PipelineSummary {
  bool present = false;
  uint32_t passes = 0;
  uint64_t hidden_values = 0;
  std::span<const int64_t> stage_busy_ns;
  uint32_t failed_stage = 0;  // 0: none.
  StatusCode failed_code = StatusCode::kOk;
  const char* failed_detail = "";
};

struct Reply {
  ReplyKind kind = ReplyKind::kAck;
  uint64_t command_id = 0;
  StatusCode code = StatusCode::kOk;   // kAck, kBoot.
  LinkError link_error = LinkError::kMalformedMessage;  // kError.
  const char* detail = "";
  BootState state = BootState::kPowerOn;  // kIdentify, kBoot, kTelemetry.
  hal::WaferInfo info;                    // kIdentify.
  bool self_test_passed = false;          // kBoot.
  std::span<const hal::SeqOutcome> outcomes;  // kStep.
  DeviceTime device_time;                     // kStep.
  PipelineSummary pipeline;                   // kStep.
  hal::SensorReadout sensors;                 // kTelemetry.
  uint64_t steps = 0;                         // kTelemetry.
  int64_t heartbeat_sent_ns = 0;              // kHeartbeat.
  uint32_t active_firmware_slot = 0;          // kIdentify.
  std::span<const LogRecord> log_records;     // kErrorLog.
  uint64_t log_next_sequence = 0;             // kErrorLog.
  uint64_t log_dropped = 0;                   // kErrorLog.
  uint64_t log_overwritten = 0;               // kErrorLog.
  GeometrySummary geometry;                   // kIdentify, kGeometry.
  std::span<const uint16_t> row_failed;       // kGeometry: per physical row.
  std::span<const uint32_t> dropped_rows;     // kGeometry.
  std::span<const FaultRecord> faults;        // kFaults.
  uint64_t faults_next_sequence = 0;          // kFaults.
  bool thermal_trip = false;                  // kTelemetry.
  uint64_t link_crc_errors = 0;               // kTelemetry.
  DiagnosticSummary diagnostic;               // kDiagnostic.
  std::span<const DiagFinding> findings;      // kDiagnostic.
  FirmwareSlotsSummary firmware_slots;        // kFirmwareSlots.
};

}  // namespace wafer::fw

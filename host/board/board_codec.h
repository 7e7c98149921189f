// The host side of board.fbs: encodes commands and verifies + decodes replies into the plain
// structs of board_types.h. The only host file that includes the generated board schema.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/result.h"
#include "host/board/board_types.h"

namespace wafer::host {

inline constexpr uint16_t kBoardProtocolMajor = 1;
// Minor 1: pipeline stages. A board whose IdentifyReply has max_step_hidden_values 0 predates
// them and runs whole models only. Minor 2: IdentifyReply reports the Step limits (0 from an
// older board: BoardIdentity::step_seqs() and its siblings then give minor 1's firmware limits).
// Minor 3: SeqSampling.sampled_before (an older board restarts a recomputed sequence's sampler
// from its seed: greedy jobs still match an undisturbed run, seeded ones may not).
// Minor 4: RunDiagnostic/DiagnosticReply and the latent fault kinds (an older board answers
// RunDiagnostic with WRONG_MESSAGE_TYPE). Minor 5: BeginModel.next_stage, Step.from_stage and
// StepReply.pipeline: boards of a pipeline hand hidden states to each other.
// Minor 6: ReadFirmwareSlots/FirmwareSlotsReply and RollbackFirmware (an older board answers
// both with WRONG_MESSAGE_TYPE).
// Minor 7: WriteWeights.attached_size and IdentifyReply.attached_weights: a chunk's bytes may
// travel as the message's second frame, sent without a copy (an older board gets `data`).
inline constexpr uint16_t kBoardProtocolMinor = 7;

using Frame = std::vector<std::byte>;

Frame EncodeIdentify(uint64_t command_id);
Frame EncodeBoot(uint64_t command_id);
Frame EncodeBeginModel(uint64_t command_id, const ModelManifest& manifest);
Frame EncodeWriteWeights(uint64_t command_id, uint32_t model_id, uint32_t tensor_index,
                         uint64_t offset, std::span<const std::byte> data, uint32_t crc32c);
// The header of a WriteWeights whose `size` bytes go as the message's second frame
// (attached_size), for a board whose identity says attached_weights.
Frame EncodeWriteWeightsHeader(uint64_t command_id, uint32_t model_id, uint32_t tensor_index,
                               uint64_t offset, uint64_t size, uint32_t crc32c);
Frame EncodeCommitModel(uint64_t command_id, uint32_t model_id);
Frame EncodeUnloadModel(uint64_t command_id, uint32_t model_id);
Frame EncodeStep(uint64_t command_id, uint32_t model_id, const std::vector<SeqStep>& seqs);
Frame EncodeReadTelemetry(uint64_t command_id);
Frame EncodeReset(uint64_t command_id);
Frame EncodeHeartbeat(uint64_t command_id, int64_t sent_ns);
Frame EncodeReadErrorLog(uint64_t command_id, uint64_t from_sequence, uint32_t max_records);
Frame EncodeBeginFirmwareImage(uint64_t command_id, uint32_t slot, uint64_t size,
                               uint32_t crc32c, std::span<const std::byte> signature);
Frame EncodeWriteFirmwareChunk(uint64_t command_id, uint32_t slot, uint64_t offset,
                               std::span<const std::byte> data, uint32_t crc32c);
Frame EncodeCommitFirmwareImage(uint64_t command_id, uint32_t slot);
Frame EncodeReadGeometry(uint64_t command_id);
Frame EncodeReadFirmwareSlots(uint64_t command_id);
Frame EncodeRollbackFirmware(uint64_t command_id);
Frame EncodeInjectFault(uint64_t command_id, const BoardFaultInjection& fault);
Frame EncodeReadFaults(uint64_t command_id, uint64_t from_sequence);
Frame EncodeRunDiagnostic(uint64_t command_id, BoardDiagTest test, uint32_t first_row,
                          uint32_t row_count);

enum class BoardReplyType : uint8_t {
  kIdentify, kBoot, kAck, kStep, kTelemetry, kHeartbeat, kError, kErrorLog, kGeometry, kFaults,
  kDiagnostic, kFirmwareSlots,
};

// A decoded reply; only the fields of `type` are set.
struct BoardReply {
  uint64_t command_id = 0;
  BoardReplyType type = BoardReplyType::kAck;
  Status status;       // kAck, kBoot and kError: the board's verdict.
  std::string detail;  // kAck, kBoot and kError.
  BoardIdentity identity;
  BoardBootState boot_state = BoardBootState::kPowerOn;  // kBoot.
  bool self_test_passed = false;                          // kBoot.
  StepOutcome step;
  BoardTelemetry telemetry;
  int64_t heartbeat_sent_ns = 0;
  BoardErrorLog error_log;  // kErrorLog.
  BoardHarvestMap geometry;   // kGeometry.
  BoardFaults faults;       // kFaults.
  BoardDiagnostic diagnostic;  // kDiagnostic.
  BoardFirmwareSlots firmware_slots;  // kFirmwareSlots.
  // kError: the board's link CRC rejected the frame (it was not processed; resending is safe).
  bool frame_crc_failed = false;
};

// Verifies `frame` (any alignment: it is copied first) and decodes it.
// Returns:
//   OK        - the reply (a board's own verdict, OK or not, is in its `status`).
//   DATA_LOSS - the frame fails size, identifier, verification or version checks, or is not a
//               reply; the message says which.
HostResult<BoardReply> DecodeBoardReply(std::span<const std::byte> frame);

// The name of a board.fbs LogCode value ("kImageRolledBack"); "" for a code this host lacks.
const char* BoardLogCodeName(uint16_t code);

// Maps a wire ErrorCode value to a Status (unknown values to INTERNAL).
Status StatusFromWire(uint16_t code);

}  // namespace wafer::host

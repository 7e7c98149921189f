// The host's only way to reach a board. One implementation speaks board.fbs over ZeroMQ
// (zmq_board_link.h: inproc:// for an embedded simulated board, ipc:// or tcp:// for a wafer-sim
// process); a real board driver would be another. Only main() functions and tests choose which.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "host/board/board_types.h"

namespace wafer::host {

// Not thread-safe; owned by the one thread that drives the board. Every call is synchronous
// and bounded by the link's timeout. A failed call returns an Error whose code is the one its
// comment lists and whose message names what went wrong (for logs and reply `detail` fields).
class BoardLink {
 public:
  virtual ~BoardLink() = default;

  // Returns:
  //   OK          - identity read.
  //   UNAVAILABLE - the board did not answer within the timeout.
  //   DATA_LOSS   - the reply was malformed.
  virtual HostResult<BoardIdentity> Identify() = 0;

  // Boots through the firmware (self-test, ready). OK when ready; FAILED_PRECONDITION when the
  // self-test failed; UNAVAILABLE on timeout.
  virtual HostStatus Boot() = 0;

  // Starts staging a model. RESOURCE_EXHAUSTED when it does not fit the board's SRAM or slots;
  // ALREADY_EXISTS when the id is taken; INVALID_ARGUMENT for a bad manifest.
  virtual HostStatus BeginModel(const ModelManifest& manifest) = 0;

  // Writes one chunk (at most max_chunk_bytes) of one tensor; the link computes its CRC-32C.
  // DATA_LOSS when the board saw a CRC mismatch; OUT_OF_RANGE past the tensor's end.
  virtual HostStatus WriteWeights(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                                  std::span<const std::byte> data) = 0;

  // WriteWeights for bytes that `owner` keeps valid and unchanged (a mapped checkpoint): a link
  // that can may hand them to the board without copying them, keeping a reference to `owner`
  // for as long as it still reads them, possibly after the call returns. The same results as
  // WriteWeights, which the default implementation calls.
  virtual HostStatus WriteSharedWeights(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                                        std::span<const std::byte> data,
                                        const std::shared_ptr<const void>& owner) {
    (void)owner;
    return WriteWeights(model_id, tensor_index, offset, data);
  }

  // FAILED_PRECONDITION when some tensor is incomplete.
  virtual HostStatus CommitModel(uint32_t model_id) = 0;

  // NOT_FOUND when the model is not on the board.
  virtual HostStatus UnloadModel(uint32_t model_id) = 0;

  // Advances a batch of sequences of one committed model. Per-sequence failures are in the
  // outcome; the call fails only when the whole step did (NOT_FOUND model, UNAVAILABLE board).
  virtual HostResult<StepOutcome> Step(uint32_t model_id, const std::vector<SeqStep>& seqs) = 0;

  virtual HostResult<BoardTelemetry> ReadTelemetry() = 0;

  // Resets the board to power-on; it must be booted again. A firmware image accepted since the
  // last reset becomes the running one, on trial until the next Boot's self-test passes (if it
  // fails, the board rolls back to the previous image by itself and logs kImageRolledBack).
  virtual HostStatus Reset() = 0;

  // Reads the firmware error log from `from_sequence` on (0: the oldest record still held), up
  // to one reply's worth; continue from the page's next_sequence. dropped_count tells how many
  // records the board's ring overwrote before they could be read.
  virtual HostResult<BoardErrorLog> ReadErrorLog(uint64_t from_sequence) = 0;

  // Firmware update, in three steps: Begin (erases `slot`, which must not be the running one),
  // WriteFirmwareChunk in order (each at most max_chunk_bytes; the link adds its CRC-32C), then
  // Commit, where the board checks the whole image's CRC-32C and its Ed25519 signature (64 bytes)
  // against the key it trusts. The image runs after the next Reset.
  // Begin: OUT_OF_RANGE (slot or size), FAILED_PRECONDITION (running or fallback slot),
  //        INVALID_ARGUMENT (signature not 64 bytes).
  virtual HostStatus BeginFirmwareImage(uint32_t slot, uint64_t size, uint32_t crc32c,
                                        std::span<const std::byte> signature) = 0;
  // DATA_LOSS (chunk CRC), OUT_OF_RANGE (past the image's end), FAILED_PRECONDITION (a gap or
  // no transfer).
  virtual HostStatus WriteFirmwareChunk(uint32_t slot, uint64_t offset,
                                        std::span<const std::byte> data) = 0;
  // DATA_LOSS (image CRC), PERMISSION_DENIED (signature), FAILED_PRECONDITION (bytes missing).
  virtual HostStatus CommitFirmwareImage(uint32_t slot) = 0;

  // Both firmware slots: the boot control's record of each (valid, size, CRC), its signature
  // trailer and header version, which slot runs, which boots next and whether the running
  // image is on trial. UNAVAILABLE on timeout; WRONG_MESSAGE_TYPE-as-INVALID_ARGUMENT from a
  // board older than protocol minor 5.
  virtual HostResult<BoardFirmwareSlots> ReadFirmwareSlots() = 0;

  // Boots the other slot's valid image at the next Reset, on trial (a failed boot returns to
  // the slot running now). FAILED_PRECONDITION (no valid image there, the running image on
  // trial, or an image already pending); UNAVAILABLE on timeout.
  virtual HostStatus RollbackFirmware() = 0;

  // The fabric's harvesting map: failed PEs per physical row, dropped rows, runtime remaps.
  // UNAVAILABLE on timeout; DATA_LOSS for a malformed reply.
  virtual HostResult<BoardHarvestMap> ReadGeometry() = 0;

  // Runtime PE fault reports from `from_sequence` on (0: the oldest held), each naming the
  // tensors to re-stage. UNAVAILABLE on timeout.
  virtual HostResult<BoardFaults> ReadFaults(uint64_t from_sequence) = 0;

  // Runs one of the firmware's built-in self-tests on usable rows [first_row, first_row +
  // row_count) (kKnownAnswer: die regions). The caller drains the board first (no Step while it
  // runs). kSramAll and kFabricLinks retire the failing PEs they find (defect map, spare, a
  // FaultReport when a model held data there). FAILED_PRECONDITION (board not ready),
  // INVALID_ARGUMENT (test or rows), UNAVAILABLE on timeout.
  virtual HostResult<BoardDiagnostic> RunDiagnostic(BoardDiagTest test, uint32_t first_row,
                                                    uint32_t row_count) = 0;

  // Toggles a fault on a simulated board. INVALID_ARGUMENT (coordinates or value),
  // FAILED_PRECONDITION (a PE fault before Boot), UNIMPLEMENTED (not simulable here, e.g.
  // kProcessCrash on an embedded board). kFirmwareHang is acknowledged, then the firmware stops
  // answering until Reset; kProcessCrash on wafer-sim returns UNAVAILABLE (the process is gone).
  virtual HostStatus InjectFault(const BoardFaultInjection& fault) = 0;

  // Asks the firmware for a heartbeat. OK when it answered; UNAVAILABLE when it did not within
  // the timeout (a hung firmware or a dead board: Reset it).
  virtual HostStatus Heartbeat() = 0;
};

}  // namespace wafer::host

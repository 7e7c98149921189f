// Firmware A/B slots: receives a new image into the slot that is not running, accepts it only
// when its CRC-32C and Ed25519 signature check out, activates it at the next reset on trial,
// and rolls back to the previous slot when the trial image fails to boot.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "firmware/command.h"
#include "firmware/error_log.h"
#include "firmware/hal/firmware_flash.h"
#include "firmware/hal/signature_verifier.h"

namespace wafer::fw {

// What a self-test result meant for the slots.
enum class BootVerdict : uint8_t {
  kSettled,     // The running image was not on trial; nothing changed.
  kConfirmed,   // The trial image passed and is now permanent.
  kRolledBack,  // The trial image failed; the fallback slot is active again (reboot into it).
};

// The image lifecycle, per slot (the boot-control record in flash holds everything but the
// transfer in progress, which a reset abandons):
//
//   Begin          Write* + Commit (CRC and signature OK)      Reset             SelfTest passed
//   -----> erased ----------------------------------> pending -----> trial ----------------> active
//                      CRC or signature bad: stays erased            |  SelfTest failed, or
//                                                                    |  Reset before a self-test
//                                                                    +-> rolled back (slot invalid,
//                                                                        fallback slot active)
//
// Not thread-safe; owned by the command processor.
class FirmwareSlots {
 public:
  // `flash`, `verifier` and `log` outlive this.
  FirmwareSlots(hal::FirmwareFlash& flash, hal::SignatureVerifier& verifier, ErrorLog& log)
      : flash_(flash), verifier_(verifier), log_(log) {}

  // Erases `image.slot` and starts receiving an image into it (abandoning any transfer).
  // Returns:
  //   OK                  - the slot is erased and waits for chunks.
  //   OUT_OF_RANGE        - no such slot, or the size is 0 or above the slot's capacity.
  //   INVALID_ARGUMENT    - the signature is not kSignatureBytes long.
  //   FAILED_PRECONDITION - the slot holds the running image, or the fallback of a trial.
  //   UNAVAILABLE         - the flash failed.
  Status Begin(const FirmwareImageArgs& image, const char*& detail);

  // Programs one chunk. A chunk may repeat bytes already written (a retry) but not leave a gap.
  // Returns:
  //   OK                  - programmed.
  //   FAILED_PRECONDITION - no transfer into this slot, or the chunk leaves a gap.
  //   OUT_OF_RANGE        - empty, above kMaxChunkBytes, or past the image's end.
  //   DATA_LOSS           - the chunk's CRC-32C did not match; nothing was written.
  //   UNAVAILABLE         - the flash failed.
  Status WriteChunk(const FirmwareChunkArgs& chunk, const char*& detail);

  // Checks the complete image and, when it passes, marks it pending for the next reset. The
  // transfer ends either way.
  // Returns:
  //   OK                  - accepted; activates at the next Reset.
  //   FAILED_PRECONDITION - no transfer into this slot, or bytes are missing.
  //   DATA_LOSS           - the image's CRC-32C did not match.
  //   PERMISSION_DENIED   - the signature did not verify against the board's key.
  //   UNAVAILABLE         - the flash failed.
  Status Commit(uint32_t slot, const char*& detail);

  // Called at every reset (what the boot ROM does): abandons a transfer, rolls back a trial
  // image that never passed a self-test, and puts a pending image on trial.
  void OnReset();

  // Called with each self-test result. Confirms or rolls back a trial image.
  BootVerdict OnSelfTest(bool passed);

  uint32_t active_slot() const { return flash_.ReadBootControl().active_slot; }

 private:
  void RollBack(hal::BootControl& control);
  Status Store(const hal::BootControl& control, const char*& detail);

  hal::FirmwareFlash& flash_;
  hal::SignatureVerifier& verifier_;
  ErrorLog& log_;
  // The transfer in progress; RAM only.
  bool receiving_ = false;
  uint32_t slot_ = 0;
  uint64_t size_ = 0;
  uint32_t crc32c_ = 0;
  uint64_t written_ = 0;
  std::array<std::byte, hal::kSignatureBytes> signature_{};
};

}  // namespace wafer::fw

// Firmware A/B slots: receives a new image into the slot that is not running, accepts it only
// when its CRC-32C and Ed25519 signature check out, activates it at the next reset on trial,
// verifies the running image again at every boot, and rolls back to the other slot when a trial
// image fails to boot or the running image no longer verifies.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"
#include "firmware/command.h"
#include "firmware/error_log.h"
#include "firmware/hal/firmware_flash.h"
#include "firmware/hal/signature_verifier.h"

namespace wafer::fw {

// What a boot's outcome meant for the slots.
enum class BootVerdict : uint8_t {
  kSettled,      // The running image was not on trial; nothing changed.
  kConfirmed,    // The trial image passed and is now permanent.
  kRolledBack,   // The image failed; the other slot is active again (reboot into it).
  kNoFallback,   // The running image is invalid and no other slot holds one: it cannot boot.
};

// The image lifecycle, per slot (the boot-control record in flash holds everything but the
// transfer in progress, which a reset abandons):
//
//   Begin          Write* + Commit (CRC and signature OK)      Reset               boot reached
//   -----> erased ----------------------------------> pending -----> trial ----------------> active
//                      CRC or signature bad: stays erased            |   Ready
//                                                                    |  a boot stage failed, or
//                                                                    |  Reset before a boot
//                                                                    +-> rolled back (slot invalid,
//                                                                        fallback slot active)
//
// An active (settled) image that no longer verifies at boot (VerifyRunning) is marked invalid
// too, and the other slot runs instead when it holds an image (OnImageInvalid).
//
// Slot layout. An accepted image occupies bytes [0, size) of its slot and is followed by a
// kTrailerBytes trailer that Commit programs: kTrailerMagic, then the image's Ed25519 signature.
// The boot-control record holds the image's size and CRC-32C; the trailer is what lets every
// boot check the signature again. A factory image is provisioned at manufacture together with
// its record, never through Commit; on a board that trusts a key it carries the same trailer
// (MakeTrailer), signed by the same key. A slot whose trailer area is still erased (all 0xFF), or
// has no room for one, holds an unsigned image (see VerifyRunning for how it is treated).
//
// Not thread-safe; owned by the command processor.
class FirmwareSlots {
 public:
  // `flash`, `verifier` and `log` outlive this.
  FirmwareSlots(hal::FirmwareFlash& flash, hal::SignatureVerifier& verifier, ErrorLog& log)
      : flash_(flash), verifier_(verifier), log_(log) {}

  static constexpr size_t kMagicBytes = 8;
  static constexpr std::array<std::byte, kMagicBytes> kTrailerMagic = {
      std::byte{'W'}, std::byte{'F'}, std::byte{'S'}, std::byte{'I'},
      std::byte{'G'}, std::byte{'v'}, std::byte{'1'}, std::byte{0}};
  static constexpr size_t kTrailerBytes = kMagicBytes + hal::kSignatureBytes;

  // The trailer that follows a signed image: kTrailerMagic, then the image's signature. Commit
  // programs exactly these bytes; manufacture provisions a signed factory image with them.
  static constexpr std::array<std::byte, kTrailerBytes> MakeTrailer(
      std::span<const std::byte, hal::kSignatureBytes> signature) {
    std::array<std::byte, kTrailerBytes> trailer{};
    for (size_t i = 0; i < kMagicBytes; ++i) trailer[i] = kTrailerMagic[i];
    for (size_t i = 0; i < hal::kSignatureBytes; ++i) trailer[kMagicBytes + i] = signature[i];
    return trailer;
  }

  // Erases `image.slot` and starts receiving an image into it (abandoning any transfer).
  // Returns:
  //   OK                  - the slot is erased and waits for chunks.
  //   OUT_OF_RANGE        - no such slot, or the size is 0 or above the slot's capacity less the
  //                         kTrailerBytes signature trailer.
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

  // Checks the complete image and, when it passes, programs its signature trailer and marks it
  // pending for the next reset. The transfer ends either way.
  // Returns:
  //   OK                  - accepted; activates at the next Reset.
  //   FAILED_PRECONDITION - no transfer into this slot, or bytes are missing.
  //   DATA_LOSS           - the image's CRC-32C did not match.
  //   PERMISSION_DENIED   - the signature did not verify against the board's key.
  //   UNAVAILABLE         - the flash failed (the image, or its signature trailer).
  Status Commit(uint32_t slot, const char*& detail);

  // Verifies the running slot's image before anything else of the boot runs, whatever its origin
  // (Commit or manufacture): first the bytes against the CRC-32C in the boot-control record, then
  // the signature. A failure is logged (kError) with its reason. The signature rule, precisely:
  //   - A slot with a trailer has its signature checked against the board's key
  //     (hal::SignatureVerifier), factory image or not. A damaged trailer (neither erased nor
  //     kTrailerMagic) fails, it is not taken for an unsigned image.
  //   - An unsigned image (trailer area erased, or no room for a trailer) on a board that trusts
  //     a key (SignatureVerifier::has_key) fails: manufacture provisions such a board with a
  //     factory image signed by that key, and Commit never installs an unsigned image.
  //   - An unsigned image on a board that trusts no key is accepted once its CRC matches. Such a
  //     board cannot check any signature, and it refuses every update (Commit needs a signature
  //     that verifies), so the only image it can hold is the one manufacture provisioned: CRC
  //     protects that image against bit rot, nothing proves who built it. Its verifier refuses
  //     every signature, so a trailer found on such a board fails like any other: manufacture
  //     leaves a keyless board's factory image unsigned (the simulator's keyless boards start
  //     this way: SimFirmwareFlash without a factory signature).
  // A running slot whose record holds no image at all is NOT_FOUND. After any failure the board
  // falls back to the other slot if that holds an image, and otherwise faults (see
  // OnImageInvalid); a faulted board can still be re-flashed into its other slot.
  // Returns:
  //   OK                - the CRC matched and the signature verified, or the image is unsigned
  //                       on a board that trusts no key.
  //   NOT_FOUND         - the record has no image for the running slot (logged kImageOutOfRange
  //                       with size 0).
  //   DATA_LOSS         - the bytes do not match the recorded CRC-32C (kImageCrcMismatch), or
  //                       the record's size does not fit the slot (kImageOutOfRange).
  //   PERMISSION_DENIED - the signature does not verify, the trailer is damaged, or the image is
  //                       unsigned on a board that trusts a key (kImageSignatureInvalid).
  Status VerifyRunning(const char*& detail);

  // Called at every reset (what the boot ROM does): abandons a transfer, rolls back a trial
  // image that never reached Ready, and puts a pending image on trial.
  void OnReset();

  // Called with each boot's outcome (true: self-test, image verification and defect remap all
  // passed). Confirms a trial image that reached Ready, rolls back one that did not.
  BootVerdict OnBootResult(bool reached_ready);

  // Called when VerifyRunning failed. The running slot is marked invalid (never booted again). A
  // trial image rolls back to its fallback slot; a settled one falls back to the other slot when
  // that slot's record holds an image (kRolledBack: reboot into it; the reboot verifies it too).
  // Otherwise kNoFallback: no valid image remains.
  BootVerdict OnImageInvalid();

  uint32_t active_slot() const { return flash_.ReadBootControl().active_slot; }

  // Describes both slots: the boot-control record (valid, size, CRC, which runs, which is
  // pending or on trial) and, from flash, each recorded image's signature trailer and the
  // version its header names (the leading "waferfw-..." word, as the factory image starts).
  void Describe(FirmwareSlotsSummary& out) const;

  // An operator's rollback: the other slot's image boots at the next reset, on trial (as an
  // accepted update does; if that boot fails, the slot running now comes back).
  // Returns:
  //   OK                  - pending for the next reset (logged kRollbackRequested).
  //   FAILED_PRECONDITION - the other slot holds no valid image, the running image is itself on
  //                         trial (reset once to confirm or reject it first), or an image
  //                         already waits for the next reset.
  //   UNAVAILABLE         - the boot-control record could not be written.
  Status RequestRollback(const char*& detail);

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

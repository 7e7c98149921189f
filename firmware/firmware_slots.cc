#include "firmware/firmware_slots.h"

#include <algorithm>

#include "common/crc32c.h"

namespace wafer::fw {

Status FirmwareSlots::Store(const hal::BootControl& control, const char*& detail) {
  Status status = flash_.WriteBootControl(control);
  if (!status.ok()) detail = "boot-control flash write failed";
  return status;
}

Status FirmwareSlots::Begin(const FirmwareImageArgs& image, const char*& detail) {
  receiving_ = false;
  const uint64_t capacity = flash_.slot_capacity();
  if (image.slot >= hal::kFirmwareSlots || image.size == 0 || capacity < kTrailerBytes ||
      image.size > capacity - kTrailerBytes) {
    log_.Append(Severity::kWarning, LogCode::kImageOutOfRange, {image.slot, 0, image.size});
    detail = "no such firmware slot, or the image size is 0 or above the slot's capacity less "
             "its signature trailer";
    return OutOfRange();
  }
  if (image.signature.size() != hal::kSignatureBytes) {
    detail = "signature must be 64 bytes (Ed25519)";
    return InvalidArgument();
  }
  hal::BootControl control = flash_.ReadBootControl();
  if (image.slot == control.active_slot) {
    detail = "the slot holds the running firmware image";
    return FailedPrecondition();
  }
  if (control.trial && image.slot == control.fallback_slot) {
    detail = "the slot holds the fallback image of a firmware image on trial";
    return FailedPrecondition();
  }
  // The slot's old image is about to be erased: forget it first, so a power loss in between
  // never leaves a record pointing at erased flash.
  control.slots[image.slot] = hal::SlotRecord{};
  if (control.pending && control.pending_slot == image.slot) control.pending = false;
  WAFER_RETURN_IF_ERROR(Store(control, detail));
  Status status = flash_.EraseSlot(image.slot);
  if (!status.ok()) {
    detail = "flash erase failed";
    return status;
  }
  receiving_ = true;
  slot_ = image.slot;
  size_ = image.size;
  crc32c_ = image.crc32c;
  written_ = 0;
  std::copy(image.signature.begin(), image.signature.end(), signature_.begin());
  log_.Append(Severity::kInfo, LogCode::kImageBegin, {image.slot, image.size, image.crc32c});
  return OkStatus();
}

Status FirmwareSlots::WriteChunk(const FirmwareChunkArgs& chunk, const char*& detail) {
  if (!receiving_ || chunk.slot != slot_) {
    detail = "no firmware image transfer into this slot";
    return FailedPrecondition();
  }
  if (chunk.data.empty() || chunk.data.size() > kMaxChunkBytes || chunk.offset > size_ ||
      chunk.data.size() > size_ - chunk.offset) {
    log_.Append(Severity::kWarning, LogCode::kImageOutOfRange,
                {chunk.slot, chunk.offset, chunk.data.size()});
    detail = "firmware chunk is empty, too large or past the image's end";
    return OutOfRange();
  }
  const uint32_t actual = Crc32c(chunk.data);
  if (actual != chunk.crc32c) {
    log_.Append(Severity::kWarning, LogCode::kImageChunkCrcMismatch,
                {chunk.slot, chunk.offset, chunk.crc32c, actual});
    detail = "firmware chunk CRC-32C mismatch; nothing written";
    return DataLoss();
  }
  if (chunk.offset > written_) {
    detail = "firmware chunk leaves a gap; the image is written in order";
    return FailedPrecondition();
  }
  // Flash is programmed once after an erase: skip the part a retried chunk already wrote.
  const uint64_t end = chunk.offset + chunk.data.size();
  if (end <= written_) return OkStatus();
  const size_t skip = static_cast<size_t>(written_ - chunk.offset);
  Status status = flash_.ProgramSlot(slot_, written_, chunk.data.subspan(skip));
  if (!status.ok()) {
    detail = "flash program failed";
    return status;
  }
  written_ = end;
  return OkStatus();
}

Status FirmwareSlots::Commit(uint32_t slot, const char*& detail) {
  if (!receiving_ || slot != slot_) {
    detail = "no firmware image transfer into this slot";
    return FailedPrecondition();
  }
  if (written_ != size_) {
    detail = "the firmware image is not fully written";
    return FailedPrecondition();
  }
  receiving_ = false;
  const std::span<const std::byte> mapped = flash_.MappedSlot(slot);
  if (mapped.size() < size_) {
    detail = "flash slot is smaller than the image";
    return Unavailable();
  }
  const std::span<const std::byte> image = mapped.first(static_cast<size_t>(size_));
  // Checked against what the flash now holds, not what was sent.
  const uint32_t actual = Crc32c(image);
  if (actual != crc32c_) {
    log_.Append(Severity::kError, LogCode::kImageCrcMismatch, {slot, crc32c_, actual});
    detail = "firmware image CRC-32C mismatch; image refused";
    return DataLoss();
  }
  if (!verifier_.Verify(image, std::span<const std::byte, hal::kSignatureBytes>(signature_))
           .ok()) {
    log_.Append(Severity::kError, LogCode::kImageSignatureInvalid, {slot, size_});
    detail = "firmware image signature does not verify against the board's key; image refused";
    return Status(StatusCode::kPermissionDenied);
  }
  // The trailer area was erased by Begin and is past the image: program it once. The record
  // below is written only after it, so a valid record always has its trailer.
  const std::array<std::byte, kTrailerBytes> trailer =
      MakeTrailer(std::span<const std::byte, hal::kSignatureBytes>(signature_));
  Status status = flash_.ProgramSlot(slot, size_, trailer);
  if (!status.ok()) {
    detail = "flash program failed (signature trailer)";
    return status;
  }
  hal::BootControl control = flash_.ReadBootControl();
  control.slots[slot] = hal::SlotRecord{true, size_, crc32c_};
  control.pending = true;
  control.pending_slot = slot;
  WAFER_RETURN_IF_ERROR(Store(control, detail));
  log_.Append(Severity::kInfo, LogCode::kImageAccepted, {slot, size_, crc32c_});
  return OkStatus();
}

void FirmwareSlots::RollBack(hal::BootControl& control) {
  const uint32_t failed = control.active_slot;
  control.slots[failed].valid = false;  // Never tried again; a new image must be sent.
  control.active_slot = control.fallback_slot;
  control.trial = false;
  log_.Append(Severity::kError, LogCode::kImageRolledBack, {failed, control.active_slot});
}

void FirmwareSlots::OnReset() {
  receiving_ = false;
  hal::BootControl control = flash_.ReadBootControl();
  bool changed = false;
  if (control.trial) {
    // The trial image never reached Ready: treat the reset as a failed boot.
    RollBack(control);
    changed = true;
  }
  if (control.pending) {
    control.pending = false;
    if (control.slots[control.pending_slot].valid && control.pending_slot != control.active_slot) {
      control.fallback_slot = control.active_slot;
      control.active_slot = control.pending_slot;
      control.trial = true;
      log_.Append(Severity::kInfo, LogCode::kImageActivated,
                  {control.active_slot, control.fallback_slot});
    }
    changed = true;
  }
  // A failed boot-control write keeps the old record: the board boots what it booted before.
  const char* detail = "";
  if (changed) Store(control, detail).IgnoreError();
}

Status FirmwareSlots::VerifyRunning(const char*& detail) {
  const hal::BootControl control = flash_.ReadBootControl();
  const uint32_t slot = control.active_slot;
  const hal::SlotRecord record = slot < hal::kFirmwareSlots ? control.slots[slot]
                                                            : hal::SlotRecord{};
  if (!record.valid) {
    log_.Append(Severity::kError, LogCode::kImageOutOfRange, {slot, 0, 0});
    detail = "no firmware image recorded in the running slot";
    return NotFound();
  }
  const std::span<const std::byte> mapped = flash_.MappedSlot(slot);
  if (record.size == 0 || record.size > mapped.size()) {
    log_.Append(Severity::kError, LogCode::kImageOutOfRange, {slot, 0, record.size});
    detail = "the running slot's record gives an image size that does not fit the slot";
    return DataLoss();
  }
  const size_t size = static_cast<size_t>(record.size);
  const std::span<const std::byte> image = mapped.first(size);
  // The CRC first, for every image: bit rot in a factory image is caught like any other.
  const uint32_t actual = Crc32c(image);
  if (actual != record.crc32c) {
    log_.Append(Severity::kError, LogCode::kImageCrcMismatch, {slot, record.crc32c, actual});
    detail = "the running firmware image no longer matches its CRC-32C";
    return DataLoss();
  }
  const auto erased = [](std::byte b) { return b == std::byte{0xFF}; };
  const bool has_room = mapped.size() - size >= kTrailerBytes;
  const std::span<const std::byte> trailer =
      has_room ? mapped.subspan(size, kTrailerBytes) : std::span<const std::byte>();
  if (!has_room || std::all_of(trailer.begin(), trailer.end(), erased)) {
    // Unsigned: only manufacture provisions one (Commit always writes a trailer). A board that
    // trusts no key cannot check a signature anyway; one that trusts a key must have been
    // provisioned with a signed factory image.
    if (!verifier_.has_key()) return OkStatus();
    log_.Append(Severity::kError, LogCode::kImageSignatureInvalid, {slot, record.size});
    detail = "the running firmware image carries no signature, but the board trusts a signing key";
    return Status(StatusCode::kPermissionDenied);
  }
  if (!std::equal(kTrailerMagic.begin(), kTrailerMagic.end(), trailer.begin()) ||
      !verifier_
           .Verify(image, trailer.subspan(kMagicBytes).first<hal::kSignatureBytes>())
           .ok()) {
    log_.Append(Severity::kError, LogCode::kImageSignatureInvalid, {slot, record.size});
    detail = "the running firmware image's signature does not verify (or its trailer is damaged)";
    return Status(StatusCode::kPermissionDenied);
  }
  return OkStatus();
}

BootVerdict FirmwareSlots::OnImageInvalid() {
  hal::BootControl control = flash_.ReadBootControl();
  const char* detail = "";
  if (control.trial) {
    RollBack(control);
    Store(control, detail).IgnoreError();
    return BootVerdict::kRolledBack;
  }
  const uint32_t failed = control.active_slot;
  const uint32_t other = (failed + 1) % hal::kFirmwareSlots;
  control.slots[failed].valid = false;  // Never booted again; a new image must be sent.
  if (!control.slots[other].valid) {
    Store(control, detail).IgnoreError();
    return BootVerdict::kNoFallback;
  }
  control.active_slot = other;
  control.fallback_slot = other;
  if (control.pending && control.pending_slot == other) control.pending = false;  // It runs now.
  log_.Append(Severity::kError, LogCode::kImageRolledBack, {failed, other});
  Store(control, detail).IgnoreError();
  return BootVerdict::kRolledBack;
}

BootVerdict FirmwareSlots::OnBootResult(bool reached_ready) {
  hal::BootControl control = flash_.ReadBootControl();
  if (!control.trial) return BootVerdict::kSettled;
  const char* detail = "";
  if (reached_ready) {
    control.trial = false;
    log_.Append(Severity::kInfo, LogCode::kImageConfirmed, {control.active_slot});
    Store(control, detail).IgnoreError();
    return BootVerdict::kConfirmed;
  }
  RollBack(control);
  Store(control, detail).IgnoreError();
  return BootVerdict::kRolledBack;
}

void FirmwareSlots::Describe(FirmwareSlotsSummary& out) const {
  const hal::BootControl control = flash_.ReadBootControl();
  out = FirmwareSlotsSummary{};
  out.active_slot = control.active_slot;
  out.fallback_slot = control.fallback_slot;
  out.pending = control.pending;
  out.pending_slot = control.pending_slot;
  out.trial = control.trial;
  out.signing_key = verifier_.has_key();
  for (uint32_t slot = 0; slot < hal::kFirmwareSlots; ++slot) {
    const hal::SlotRecord& record = control.slots[slot];
    FirmwareSlotSummary& summary = out.slots[slot];
    summary.valid = record.valid;
    summary.size = record.size;
    summary.crc32c = record.crc32c;
    const std::span<const std::byte> mapped = flash_.MappedSlot(slot);
    if (record.size == 0 || record.size > mapped.size()) continue;
    const size_t size = static_cast<size_t>(record.size);
    if (mapped.size() - size >= kTrailerBytes &&
        std::equal(kTrailerMagic.begin(), kTrailerMagic.end(), mapped.begin() + size)) {
      summary.has_signature = true;
      std::copy_n(mapped.begin() + size + kMagicBytes, hal::kSignatureBytes,
                  summary.signature.begin());
    }
    // The version: "waferfw-" and what follows up to the first byte outside [A-Za-z0-9._+-].
    static constexpr char kPrefix[] = "waferfw-";
    const size_t prefix = sizeof(kPrefix) - 1;
    bool named = size > prefix;
    for (size_t i = 0; named && i < prefix; ++i) named = mapped[i] == std::byte(kPrefix[i]);
    if (!named) continue;
    uint32_t n = 0;
    for (; n < kMaxImageVersionBytes && n < size; ++n) {
      const char c = static_cast<char>(mapped[n]);
      const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' || c == '-';
      if (!word) break;
      summary.version[n] = c;
    }
    summary.version_length = n;
  }
}

Status FirmwareSlots::RequestRollback(const char*& detail) {
  hal::BootControl control = flash_.ReadBootControl();
  static_assert(hal::kFirmwareSlots == 2, "a rollback goes to the one other slot");
  const uint32_t other = 1 - (control.active_slot & 1);
  if (control.trial) {
    detail = "the running image is on trial: reset once to confirm it (or let it roll back) "
             "before rolling back";
    return FailedPrecondition();
  }
  if (control.pending) {
    detail = "an image already waits for the next reset";
    return FailedPrecondition();
  }
  if (!control.slots[other].valid) {
    detail = "the other firmware slot holds no valid image";
    return FailedPrecondition();
  }
  control.pending = true;
  control.pending_slot = other;
  WAFER_RETURN_IF_ERROR(Store(control, detail));
  log_.Append(Severity::kInfo, LogCode::kRollbackRequested, {control.active_slot, other});
  return OkStatus();
}

}  // namespace wafer::fw

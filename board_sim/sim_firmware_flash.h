// The simulated board's firmware flash: two image slots and the boot-control record, in host
// memory. Slot 0 starts with a valid factory image and runs, signed when manufacture was given a
// signature for it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "firmware/hal/firmware_flash.h"
#include "firmware/hal/signature_verifier.h"

namespace wafer::sim {

using FirmwareSignature = std::array<std::byte, fw::hal::kSignatureBytes>;  // Ed25519.

// Parses 128 hex digits. INVALID_ARGUMENT otherwise.
Result<FirmwareSignature> ParseFirmwareSignature(const std::string& hex);

// Not thread-safe; owned by the board thread.
class SimFirmwareFlash final : public fw::hal::FirmwareFlash {
 public:
  static constexpr uint64_t kDefaultSlotBytes = 4u << 20;
  // What slot 0 holds at power-up.
  static constexpr std::string_view kFactoryImage = "waferfw-1.0.0 factory image\n";

  // kFactoryImage as bytes: what manufacture signs for a board that trusts a key.
  static std::span<const std::byte> factory_image() {
    return std::as_bytes(std::span(kFactoryImage.data(), kFactoryImage.size()));
  }

  // Slot 0 holds kFactoryImage, unsigned: the factory state of a board that trusts no key (a
  // board that trusts one refuses to run it; see fw::FirmwareSlots::VerifyRunning).
  explicit SimFirmwareFlash(uint64_t slot_bytes = kDefaultSlotBytes);
  // Slot 0 holds kFactoryImage followed by its signature trailer: `factory_signature` is the
  // Ed25519 signature of factory_image() by the key the board trusts. A slot too small for the
  // image and its trailer is left without an image (the board cannot boot until re-flashed).
  SimFirmwareFlash(uint64_t slot_bytes, const FirmwareSignature& factory_signature);

  // Manufacture: erases both slots, programs `image` at the start of slot 0 and, when
  // `signature` is given, the trailer that FirmwareSlots::Commit would write after it
  // (fw::FirmwareSlots::MakeTrailer), then records `image` (size, CRC-32C) as the only image,
  // active and settled. Whether the signature verifies is the firmware's business, at boot.
  // Returns:
  //   OK           - provisioned.
  //   OUT_OF_RANGE - the image is empty, or it (with its trailer, when signed) does not fit a
  //                  slot; both slots are erased and no image is recorded.
  Status ProvisionFactoryImage(std::span<const std::byte> image,
                               const FirmwareSignature* signature);

  uint64_t slot_capacity() const override { return slot_bytes_; }
  Status EraseSlot(uint32_t slot) override;
  // NOR semantics: programming clears bits (new = old & data); erase sets them.
  Status ProgramSlot(uint32_t slot, uint64_t offset, std::span<const std::byte> data) override;
  std::span<const std::byte> MappedSlot(uint32_t slot) const override;
  fw::hal::BootControl ReadBootControl() const override { return control_; }
  Status WriteBootControl(const fw::hal::BootControl& control) override;

 private:
  uint64_t slot_bytes_;
  std::array<std::vector<std::byte>, fw::hal::kFirmwareSlots> slots_;
  fw::hal::BootControl control_;
};

}  // namespace wafer::sim

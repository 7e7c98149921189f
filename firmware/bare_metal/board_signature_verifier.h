// Firmware image signatures checked by the board controller's Ed25519 engine against the key in
// its OTP fuses (board_map.h, namespace crypto).
#pragma once

#include "firmware/bare_metal/register_bus.h"
#include "firmware/hal/signature_verifier.h"

namespace wafer::fw::board {

// Not thread-safe; driven only by the superloop.
class BoardSignatureVerifier final : public hal::SignatureVerifier {
 public:
  BoardSignatureVerifier();

  // PERMISSION_DENIED also when the engine does not finish in kTimeoutSpins status reads: an
  // image the board cannot check is not trusted.
  Status Verify(std::span<const std::byte> message,
                std::span<const std::byte, hal::kSignatureBytes> signature) override;
  bool has_key() const override;

  // Ed25519 over a 1 MiB image takes the engine about 10 ms; this bounds it generously.
  static constexpr uint32_t kTimeoutSpins = 100'000'000;

 private:
  RegisterBus regs_;
};

}  // namespace wafer::fw::board

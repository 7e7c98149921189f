// Checks firmware image signatures against the public key the board trusts (fused at
// manufacture). An interface so the firmware core stays portable: the simulator implements it
// with libsodium, a real board with its crypto accelerator or a vetted embedded library.
#pragma once

#include <cstddef>
#include <span>

#include "common/status.h"

namespace wafer::fw::hal {

inline constexpr size_t kSignatureBytes = 64;  // Ed25519.

// Not thread-safe; driven only by the firmware's superloop.
class SignatureVerifier {
 public:
  virtual ~SignatureVerifier() = default;

  // Verifies an Ed25519 detached signature of `message`.
  // Returns:
  //   OK                - the board's key signed exactly these bytes.
  //   PERMISSION_DENIED - the signature does not verify, or the board has no key configured.
  virtual Status Verify(std::span<const std::byte> message,
                        std::span<const std::byte, kSignatureBytes> signature) = 0;

  // Whether the board trusts a key at all (one was fused at manufacture). A board without one
  // refuses every signature, so it accepts no update and cannot check its factory image's
  // signature either (see FirmwareSlots::VerifyRunning).
  virtual bool has_key() const = 0;
};

}  // namespace wafer::fw::hal

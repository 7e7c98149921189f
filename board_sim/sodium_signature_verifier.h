// hal::SignatureVerifier with libsodium's Ed25519 (crypto_sign_verify_detached), for the
// simulated board. The public key is the one the board trusts (BoardOptions).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"
#include "firmware/hal/signature_verifier.h"

namespace wafer::sim {

using FirmwarePublicKey = std::array<uint8_t, 32>;  // Ed25519.

// Parses 64 hex digits. INVALID_ARGUMENT otherwise.
Result<FirmwarePublicKey> ParseFirmwarePublicKey(const std::string& hex);

// Not thread-safe; owned by the board thread.
class SodiumSignatureVerifier final : public fw::hal::SignatureVerifier {
 public:
  // Without a key every signature is refused: a board must be told whom to trust.
  explicit SodiumSignatureVerifier(std::optional<FirmwarePublicKey> key);

  Status Verify(std::span<const std::byte> message,
                std::span<const std::byte, fw::hal::kSignatureBytes> signature) override;
  bool has_key() const override { return key_.has_value(); }

 private:
  std::optional<FirmwarePublicKey> key_;
};

}  // namespace wafer::sim

#include "board_sim/sodium_signature_verifier.h"

#include <sodium.h>

namespace wafer::sim {

static_assert(crypto_sign_BYTES == fw::hal::kSignatureBytes);
static_assert(crypto_sign_PUBLICKEYBYTES == sizeof(FirmwarePublicKey));

Result<FirmwarePublicKey> ParseFirmwarePublicKey(const std::string& hex) {
  FirmwarePublicKey key{};
  size_t len = 0;
  const char* end = nullptr;
  if (hex.size() != 2 * key.size() ||
      sodium_hex2bin(key.data(), key.size(), hex.data(), hex.size(), nullptr, &len, &end) != 0 ||
      len != key.size() || end != hex.data() + hex.size()) {
    return InvalidArgument();
  }
  return key;
}

SodiumSignatureVerifier::SodiumSignatureVerifier(std::optional<FirmwarePublicKey> key)
    : key_(key) {
  // Idempotent and thread-safe; picks the implementation and seeds nothing we rely on.
  if (sodium_init() < 0) key_.reset();
}

Status SodiumSignatureVerifier::Verify(
    std::span<const std::byte> message,
    std::span<const std::byte, fw::hal::kSignatureBytes> signature) {
  if (!key_.has_value()) return Status(StatusCode::kPermissionDenied);
  const int rc = crypto_sign_verify_detached(
      reinterpret_cast<const unsigned char*>(signature.data()),
      reinterpret_cast<const unsigned char*>(message.data()), message.size(), key_->data());
  return rc == 0 ? OkStatus() : Status(StatusCode::kPermissionDenied);
}

}  // namespace wafer::sim

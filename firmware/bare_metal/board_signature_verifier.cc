#include "firmware/bare_metal/board_signature_verifier.h"

#include <cstring>

#include "firmware/bare_metal/board_map.h"

namespace wafer::fw::board {

BoardSignatureVerifier::BoardSignatureVerifier() : regs_(kCryptoBase) {}

bool BoardSignatureVerifier::has_key() const {
  return (regs_.Read<crypto::kStatus>() & crypto::kStatusKeyFused) != 0;
}

Status BoardSignatureVerifier::Verify(std::span<const std::byte> message,
                                      std::span<const std::byte, hal::kSignatureBytes> signature) {
  if (!has_key()) return PermissionDenied();
  static_assert(hal::kSignatureBytes == crypto::kSignatureWords * 4);
  for (uint32_t i = 0; i < crypto::kSignatureWords; ++i) {
    uint32_t w;
    std::memcpy(&w, signature.data() + 4 * i, 4);
    regs_.WriteAt<crypto::kSignature0>(i, w);
  }
  regs_.Write<crypto::kMessageAddress>(
      static_cast<uint32_t>(reinterpret_cast<uintptr_t>(message.data())));
  regs_.Write<crypto::kMessageLength>(static_cast<uint32_t>(message.size()));
  MemoryBarrier();  // The engine reads the message: it must be in memory first.
  regs_.Write<crypto::kControl>(crypto::kControlStart);
  uint32_t status = 0;
  const bool done = SpinUntil(
      [&] {
        status = regs_.Read<crypto::kStatus>();
        return (status & crypto::kStatusBusy) == 0;
      },
      kTimeoutSpins);
  if (!done || (status & crypto::kStatusValid) == 0) return PermissionDenied();
  return OkStatus();
}

}  // namespace wafer::fw::board

// The element types and roles of a Llama-family model's tensors: one definition for the host,
// the firmware and the simulator. Values match board.fbs DType and TensorRole one for one, so a
// codec converts with a static_cast. Header-only, no heap: firmware includes it.
#pragma once

#include <cstdint>

namespace wafer {

// Same values as board.fbs DType.
enum class DType : uint8_t { kF32, kF16, kBF16 };

// Same values as board.fbs TensorRole.
enum class TensorRole : uint8_t {
  kEmbedding, kAttnNorm, kWq, kWk, kWv, kWo, kMlpNorm, kWGate, kWUp, kWDown, kFinalNorm, kLmHead,
};

}  // namespace wafer

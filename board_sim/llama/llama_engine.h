// The arithmetic the simulated wafer performs for a Llama-family decoder: embedding, RMSNorm,
// rotary attention (grouped-query, optional Llama 3 rope scaling) over a per-slot KV cache,
// SwiGLU MLP and the output head, in float32 on the host CPU ("functional" simulation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/result.h"

namespace wafer::sim {

enum class DType : uint8_t { kF32, kF16, kBF16 };

// Same values as board.fbs TensorRole.
enum class TensorRole : uint8_t {
  kEmbedding, kAttnNorm, kWq, kWk, kWv, kWo, kMlpNorm, kWGate, kWUp, kWDown, kFinalNorm, kLmHead,
};

struct LlamaArch {
  uint32_t vocab_size = 0;
  uint32_t hidden_size = 0;
  uint32_t intermediate_size = 0;
  uint32_t num_layers = 0;
  uint32_t num_heads = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  float rope_theta = 10000.0f;
  float rms_norm_eps = 1e-5f;
  uint32_t max_position = 0;
  bool tie_embeddings = false;
  float rope_scaling_factor = 0;  // 0: no scaling.
  float rope_low_freq_factor = 0;
  float rope_high_freq_factor = 0;
  uint32_t rope_original_max_position = 0;
};

// A tensor's bytes as they sit in (simulated) SRAM, row-major, outermost dimension first.
struct TensorView {
  TensorRole role = TensorRole::kEmbedding;
  uint32_t layer = 0;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  std::span<const std::byte> bytes;
};

struct Sampling {
  float temperature = 0;  // 0: greedy (argmax, lowest id on ties).
  uint32_t top_k = 0;     // 0: off.
  float top_p = 1;        // 1: off.
};

// Not thread-safe; owned by the simulated board. Internally, Forward() splits large matrix
// products with one private helper thread (started by Create, idle between calls).
class LlamaEngine {
 public:
  // Validates every tensor's role, layer, dtype and shape against `arch` and copies the weights
  // in their stored dtype (norm weights as float32); `tensors` may be freed afterwards. Reserves
  // a KV cache of `slots` sequences of `context_length` tokens.
  // Returns INVALID_ARGUMENT (missing, duplicate or misshapen tensor; bad arch) or
  // RESOURCE_EXHAUSTED (the KV cache cannot be allocated).
  static Result<std::unique_ptr<LlamaEngine>> Create(const LlamaArch& arch,
                                                     std::span<const TensorView> tensors,
                                                     uint32_t slots, uint32_t context_length);
  ~LlamaEngine();

  // Clears a slot's KV cache.
  void ResetSlot(uint32_t slot);
  uint32_t context_tokens(uint32_t slot) const;
  uint32_t slots() const;
  uint32_t context_length() const;
  const LlamaArch& arch() const;

  // Appends `tokens` to each listed slot's sequence (prefill chunk or decode token) and writes
  // the logits of each slot's last position to `logits[i * vocab_size ...]`. Slots are distinct.
  // Returns OUT_OF_RANGE (a slot or token id out of range) or RESOURCE_EXHAUSTED (a slot's
  // context would overflow); on error no slot's state changes.
  Status Forward(std::span<const uint32_t> slots,
                 std::span<const std::span<const uint32_t>> tokens, std::span<float> logits);

 private:
  struct Impl;
  explicit LlamaEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Picks a token from logits. Greedy when temperature is 0; otherwise temperature, top-k, top-p,
// then a draw from `rng_state` (advanced), so a seed reproduces the same tokens.
uint32_t SampleToken(std::span<const float> logits, const Sampling& sampling, uint64_t& rng_state);

}  // namespace wafer::sim

// A Llama-family model's architecture, as its config.json gives it (board.fbs ModelArch): one
// definition for the host (config parsing, placement, BeginModel), the firmware (BeginModel's
// manifest) and the simulator (the functional engine and the timing model). Header-only, no
// heap: firmware includes it.
#pragma once

#include <cstdint>

namespace wafer {

// Llama 3 rope scaling (config.json "rope_scaling" with rope_type "llama3"; board.fbs
// RopeScaling). factor 0: none.
struct RopeScaling {
  float factor = 0;  // 0: none.
  float low_freq_factor = 0;
  float high_freq_factor = 0;
  uint32_t original_max_position = 0;

  friend bool operator==(const RopeScaling&, const RopeScaling&) = default;
};

struct ModelArch {
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
  RopeScaling rope_scaling;

  friend bool operator==(const ModelArch&, const ModelArch&) = default;
};

}  // namespace wafer

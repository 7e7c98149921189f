// Test helper: the Llama 3.1 architectures the planner and `model plan` tests size against
// (HARDWARE.md's "Models for sizing"), as their public config.json files give them.
#pragma once

#include <cstdint>

#include "host/board/board_types.h"

namespace wafer::host::testing {

inline ModelArch Llama31(uint32_t hidden, uint32_t inter, uint32_t layers, uint32_t heads) {
  ModelArch a;
  a.vocab_size = 128256;
  a.hidden_size = hidden;
  a.intermediate_size = inter;
  a.num_layers = layers;
  a.num_heads = heads;
  a.num_kv_heads = 8;
  a.head_dim = hidden / heads;
  a.rope_theta = 500000;
  a.max_position = 131072;
  a.rope_scaling = {8, 1, 4, 8192};
  return a;
}

inline ModelArch Llama8B() { return Llama31(4096, 14336, 32, 32); }
inline ModelArch Llama70B() { return Llama31(8192, 28672, 80, 64); }
inline ModelArch Llama405B() { return Llama31(16384, 53248, 126, 128); }

}  // namespace wafer::host::testing

// Test helper: a simple valid placement for tests that do not exercise the host's planner.
// Each tensor, then each decoder layer's KV cache, gets its own band of full-width rows (the
// fewest that hold it), stacked downward from `first_row`.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "firmware/hal/wafer.h"

namespace wafer::sim::testing {

struct RowPlacement {
  std::vector<fw::hal::KvRegion> kv;
  uint32_t next_row = 0;  // The first row below the placement.
};

// Sets every tensor's placement; KV regions for `layers` layers of `kv_bytes_per_layer` each.
inline RowPlacement PlaceInRows(std::span<fw::hal::TensorSpec> tensors, uint32_t layers,
                                uint64_t kv_bytes_per_layer, uint32_t width,
                                uint32_t sram_per_pe, uint32_t first_row = 0) {
  RowPlacement out;
  uint32_t row = first_row;
  const uint64_t row_bytes = uint64_t{width} * sram_per_pe;
  auto band = [&](uint64_t bytes) {
    const auto rows = static_cast<uint32_t>(bytes == 0 ? 1 : (bytes + row_bytes - 1) / row_bytes);
    fw::hal::PeRect r{0, row, width, rows};
    row += rows;
    return r;
  };
  for (fw::hal::TensorSpec& t : tensors) t.placement = band(t.byte_size);
  for (uint32_t l = 0; l < layers; ++l) {
    fw::hal::PeRect r = band(kv_bytes_per_layer);
    out.kv.push_back({l, r, (kv_bytes_per_layer + r.pes() - 1) / r.pes()});
  }
  out.next_row = row;
  return out;
}

// The tensors of a Llama-family model of `a` at 16 bit, in transfer order (names left empty).
inline std::vector<fw::hal::TensorSpec> LlamaSpecs(const ModelArch& a) {
  namespace hal = fw::hal;
  std::vector<hal::TensorSpec> out;
  auto add = [&](TensorRole role, uint32_t layer, uint64_t rows, uint64_t cols) {
    hal::TensorSpec s;
    s.role = role;
    s.layer = layer;
    s.dtype = DType::kBF16;
    s.rank = cols == 0 ? 1 : 2;
    s.shape[0] = rows;
    s.shape[1] = cols;
    s.byte_size = rows * (cols == 0 ? 1 : cols) * 2;
    out.push_back(s);
  };
  const uint64_t h = a.hidden_size, q = uint64_t{a.num_heads} * a.head_dim,
                 kv = uint64_t{a.num_kv_heads} * a.head_dim, inter = a.intermediate_size;
  add(TensorRole::kEmbedding, 0, a.vocab_size, h);
  for (uint32_t l = 0; l < a.num_layers; ++l) {
    add(TensorRole::kAttnNorm, l, h, 0);
    add(TensorRole::kWq, l, q, h);
    add(TensorRole::kWk, l, kv, h);
    add(TensorRole::kWv, l, kv, h);
    add(TensorRole::kWo, l, h, q);
    add(TensorRole::kMlpNorm, l, h, 0);
    add(TensorRole::kWGate, l, inter, h);
    add(TensorRole::kWUp, l, inter, h);
    add(TensorRole::kWDown, l, h, inter);
  }
  add(TensorRole::kFinalNorm, 0, h, 0);
  if (!a.tie_embeddings) add(TensorRole::kLmHead, 0, a.vocab_size, h);
  return out;
}

}  // namespace wafer::sim::testing

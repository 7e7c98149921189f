// The simulated wafer's device-time model. Derived from preset parameters and a simple,
// documented placement; never fitted to throughput figures.
//
// Placement: the model's L decoder layers plus the output head form L+1 pipeline stages; each
// stage owns an equal share of the usable PEs, laid out as a strip of full fabric width `w`
// (or fewer columns when a stage has fewer PEs than a row) and `h` rows.
//
// One forward pass carries T token positions through every stage:
//   compute(stage, token) = max(MACs / (PEs * simd), weight+KV bytes / (PEs * sram_bytes_per_cycle))
//     with MACs = the stage's parameters + 2 * heads * head_dim * context (attention).
//   fabric(stage) = 7 sequential row reductions (q/k/v, scores, softmax sum, scores x V, output
//     projection, gate/up, down), each (w-1) hops * hop cycles + ceil(log2 w) tree levels *
//     router cycles, plus a column broadcast ((h-1) hops + router) and the hand-off to the next
//     stage (h hops + router).
//   latency of the first token = sum over stages of compute + fabric;
//   every further token enters once the slowest stage frees up: compute + 7 * router cycles
//   (reductions are pipelined, so only router occupancy repeats, not the hop latency).
// So decode (T = batch size, one pass per token) is latency-bound by the reductions, and
// prefill (T = prompt tokens in one pass) amortizes them.
// A Step adds one host round trip plus its token bytes over the host I/O bandwidth.
#pragma once

#include <cstdint>

#include "board_sim/preset.h"

namespace wafer::sim {

struct ModelShape {
  uint32_t layers = 0;
  uint32_t hidden = 0;
  uint32_t intermediate = 0;
  uint32_t heads = 0;
  uint32_t kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t vocab = 0;
};

struct PassTime {
  int64_t compute_ns = 0;
  int64_t fabric_ns = 0;
};

// Thread-compatible (const methods only after construction).
class TimingModel {
 public:
  explicit TimingModel(const Preset& preset) : preset_(preset) {}

  // A forward pass of `tokens` positions, each attending to `mean_context` earlier tokens.
  PassTime Pass(const ModelShape& model, uint64_t tokens, double mean_context) const;

  // One host transaction moving `bytes` (command and reply).
  int64_t HostIoNs(uint64_t bytes) const;

 private:
  Preset preset_;
};

}  // namespace wafer::sim

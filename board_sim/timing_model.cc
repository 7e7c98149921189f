#include "board_sim/timing_model.h"

#include <algorithm>
#include <cmath>

namespace wafer::sim {
namespace {

constexpr double kReductionsPerLayer = 7;
constexpr double kBytesPerWeight = 2;  // Weights sit in SRAM at 16 bit.

}  // namespace

PassTime TimingModel::Pass(const ModelShape& m, uint64_t tokens, double mean_context) const {
  PassTime t;
  if (tokens == 0 || m.layers == 0) return t;
  const double stages = m.layers + 1.0;
  const double pes = std::max(1.0, std::floor(double(preset_.usable_pes()) / stages));
  const double w = std::min<double>(preset_.fabric_width, pes);
  const double h = std::ceil(pes / w);
  const double hop = preset_.hop_latency_cycles;
  const double router = preset_.router_cycles;

  const double q_dim = double(m.heads) * m.head_dim;
  const double kv_dim = double(m.kv_heads) * m.head_dim;
  const double layer_params = m.hidden * q_dim + 2 * m.hidden * kv_dim + q_dim * m.hidden +
                              3.0 * m.hidden * m.intermediate;
  const double attn_macs = 2 * q_dim * mean_context;
  const double kv_bytes_read = 2 * kv_dim * mean_context * 2;  // K and V, 16 bit.
  auto compute_cycles = [&](double macs, double bytes) {
    return std::max(macs / (pes * preset_.simd_width),
                    bytes / (pes * preset_.sram_bytes_per_cycle_per_pe));
  };
  const double layer_compute =
      compute_cycles(layer_params + attn_macs, layer_params * kBytesPerWeight + kv_bytes_read);
  const double head_params = double(m.vocab) * m.hidden;
  const double head_compute = compute_cycles(head_params, head_params * kBytesPerWeight);

  const double reduce = (w - 1) * hop + std::ceil(std::log2(std::max(w, 1.0))) * router;
  const double broadcast = (h - 1) * hop + router;
  const double handoff = h * hop + router;
  const double layer_fabric = kReductionsPerLayer * reduce + broadcast + handoff;
  const double head_fabric = reduce + broadcast;  // One reduction for the logits.

  const double first_compute = m.layers * layer_compute + head_compute;
  const double first_fabric = m.layers * layer_fabric + head_fabric;
  const double interval_compute = std::max(layer_compute, head_compute);
  const double interval_fabric = kReductionsPerLayer * router;
  const double more = double(tokens - 1);
  const double ns_per_cycle = 1e9 / preset_.clock_hz;
  t.compute_ns = std::llround((first_compute + more * interval_compute) * ns_per_cycle);
  t.fabric_ns = std::llround((first_fabric + more * interval_fabric) * ns_per_cycle);
  return t;
}

int64_t TimingModel::HostIoNs(uint64_t bytes) const {
  return std::llround(preset_.round_trip_us * 1e3 + double(bytes) / preset_.io_bytes_per_s * 1e9);
}

}  // namespace wafer::sim
